"""The data module: vocabularies from train only, unknowns, input features, pretrained words, batches."""

import pytest
import torch
from helpers import CONLLU

from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.data.encoding import Numericalizer
from seqmodels.data.vocab import CASES, UNK, case_of


def write(tmp_path, name: str, text: str) -> str:
    """Write ``text`` to ``tmp_path / name``; the path as a string."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def conllu_module(tmp_path, test_text: str = CONLLU, **kwargs) -> SequenceDataModule:
    """A data module training and validating on the CoNLL-U sample, testing on ``test_text``."""
    train = write(tmp_path, "train.conllu", CONLLU)
    test = write(tmp_path, "test.conllu", test_text)
    return SequenceDataModule(
        format="conllu", train_file=train, val_file=train, test_file=test, cache_dir=str(tmp_path / "cache"), **kwargs
    )


def test_vocabularies_come_from_train_and_unknown_words_map_to_unk(tmp_path):
    unseen = CONLLU.replace("\tfast\t", "\tslowly\t")
    data = conllu_module(tmp_path, test_text=unseen)
    assert "slowly" not in data.vocabularies["tokens"]
    assert data.vocab["tagger"] == ["ADV", "AUX", "DET", "NOUN", "PART", "PRON", "PROPN", "PUNCT", "VERB"]
    test_ids = data.encoded["data"]["test"]["token_ids"]
    assert data.vocabularies["tokens"].stoi[UNK] in test_ids[1]


def test_unseen_tags_stop_the_run_with_their_names(tmp_path):
    data = conllu_module(tmp_path, test_text=CONLLU.replace("\tADV\t", "\tINTJ\t"))
    with pytest.raises(ValueError, match=r"test.conllu: the tagger head's classes .*\['INTJ'\]"):
        _ = data.vocabularies


@pytest.mark.parametrize(("tag_column", "refused"), [("upos", True), ("XPOS", True), ("feats", False)])
def test_training_tags_without_annotation_are_refused_where_underscore_is_no_tag(tmp_path, tag_column, refused):
    """In a UPOS, XPOS or DEPREL column ``_`` is a word nobody tagged (say, a silver file tagged by a model of another
    column): a tagger trained on it would learn to predict ``_``. In FEATS, ``_`` is a value: no features."""
    text = CONLLU.replace("\tADV\tRB\t", "\t_\t_\t").replace("\tNN\t_\t", "\tNN\tNumber=Sing\t")  # one word each
    train = write(tmp_path, "silver.conllu", text)
    data = SequenceDataModule(format="conllu", train_file=train, val_file=train, tag_column=tag_column,
                              cache_dir=str(tmp_path / "cache"))  # fmt: skip
    if not refused:
        assert data.vocab["tagger"] == ["Number=Sing", "_"]
        return
    with pytest.raises(ValueError, match=rf"silver\.conllu: expected a {tag_column.upper()} tag on every word, "
                                         r"found _ \(no annotation\) in 1 of 2 sentences"):  # fmt: skip
        _ = data.vocabularies


def test_lowercase_adds_a_case_feature_and_chars_keep_case(tmp_path):
    data = conllu_module(tmp_path, lowercase=True, char_features=True)
    vocab = data.vocab
    assert "it" in vocab["tokens"] and "It" not in vocab["tokens"]
    assert vocab["cases"] == CASES
    assert "I" in vocab["chars"] and "i" in vocab["chars"]
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["char_ids"].dim() == 3 and batch["char_ids"].shape[:2] == batch["token_ids"].shape
    assert batch["case_ids"].shape == batch["token_ids"].shape


def test_pretrained_words_join_the_vocabulary(tmp_path):
    vectors = write(tmp_path, "vectors.txt", "fast 1 2\nslowly 3 4\nunrelated 5 6\n")
    data = conllu_module(tmp_path, test_text=CONLLU.replace("\tfast\t", "\tslowly\t"), pretrained_embeddings=vectors)
    tokens = data.vocabularies["tokens"]
    assert "slowly" in tokens  # in the corpus (test split) and in the vectors
    assert "unrelated" not in tokens  # in the vectors only
    matrix = data.initial_embeddings
    torch.testing.assert_close(matrix[tokens.stoi["slowly"]], torch.tensor([3.0, 4.0]))


def test_numericalizer_truncates_long_words_and_classifies_case():
    vocab = {"tokens": ["<pad>", "<unk>", "nasa"], "chars": ["<pad>", "<unk>", "N", "A", "S"], "cases": CASES}
    encoded = Numericalizer(vocab, max_word_length=3)({"tokens": [["NASA", "x"]]})
    assert encoded["token_ids"] == [[2, 1]]
    assert encoded["char_ids"][0][0] == [2, 3, 4]
    assert encoded["case_ids"] == [[CASES.index("upper"), CASES.index("lower")]]
    assert [case_of(t) for t in ("Paris", "iPhone", "42", "ok")] == ["title", "mixed", "none", "lower"]


def test_batches_are_bucketed_and_cover_the_split(tmp_path):
    data = SequenceDataModule(train_size=1000, val_size=20, test_size=20, batch_size=16, cache_dir=str(tmp_path))
    data.setup("fit")
    batches = list(data.train_dataloader())
    assert sum(len(b["lengths"]) for b in batches) == 1000
    padding = 1 - sum(b["lengths"].sum().item() for b in batches) / sum(b["token_ids"].numel() for b in batches)
    assert padding < 0.05


def test_vocabularies_are_cached_until_the_data_changes(tmp_path, monkeypatch):
    first = conllu_module(tmp_path, char_features=True).vocab
    calls = []
    original = SequenceDataModule._build_vocabularies
    monkeypatch.setattr(SequenceDataModule, "_build_vocabularies", lambda self: calls.append(1) or original(self))
    assert conllu_module(tmp_path, char_features=True).vocab == first
    assert calls == []  # read from the cache
    assert "chars" not in conllu_module(tmp_path).vocab  # other options: built again
    calls.clear()
    train = tmp_path / "train.conllu"
    train.write_text(CONLLU.replace("\tfast\t", "\tquickly\t"), encoding="utf-8")  # same path, new content
    changed = SequenceDataModule(
        format="conllu", train_file=str(train), val_file=str(train), test_file=str(tmp_path / "test.conllu"),
        cache_dir=str(tmp_path / "cache"), char_features=True,
    )
    assert "quickly" in changed.vocab["tokens"] and calls == [1]


def test_only_evaluation_batches_carry_the_words_and_they_stay_on_the_cpu(tmp_path):
    data = conllu_module(tmp_path)
    data.setup("fit")
    assert "tokens" not in next(iter(data.train_dataloader()))  # training never reads them
    batch = next(iter(data.val_dataloader()))
    assert [len(words) for words in batch["tokens"]] == batch["lengths"].tolist()
    moved = data.transfer_batch_to_device(dict(batch), torch.device("meta"), 0)
    assert moved["token_ids"].device.type == "meta"
    assert moved["lengths"].device.type == "cpu" and moved["tokens"] is batch["tokens"]


def test_worker_processes_are_persistent_and_give_the_same_batches(tmp_path):
    data = SequenceDataModule(train_size=200, val_size=20, test_size=20, batch_size=16, cache_dir=str(tmp_path))
    data.setup("fit")
    in_process = list(data.train_dataloader())
    data.num_workers = 2
    loader = data.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    for ours, theirs in zip(in_process, loader, strict=True):
        assert torch.equal(ours["token_ids"], theirs["token_ids"]) and torch.equal(ours["lengths"], theirs["lengths"])
