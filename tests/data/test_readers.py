"""Corpus readers: every format, every malformed-input error, caching on content, validation carving, real data."""

import collections
import logging
import os
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from datasets import ClassLabel, Dataset, Features, List, Value
from helpers import CONLLU

from seqmodels.data.corpus import Corpus
from seqmodels.data.readers import DataFormatError, iob1_to_iob2, read_corpus, tokenize
from seqmodels.data.readers.conll import ConlluTagField

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may touch the network: the hub reader only ever sees a local directory."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def write(tmp_path):
    """Write text (or bytes) into tmp_path and return the file's path as a string."""

    def _write(name: str, content: str | bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    return _write


@pytest.fixture
def read(tmp_path):
    """``read_corpus`` with a per-test cache directory."""

    def _read(format: str, *files: str | None, seed: int = 0, **kwargs) -> datasets.DatasetDict:
        corpus = Corpus(format=format, **dict(zip(("train_file", "val_file", "test_file"), files)), **kwargs)
        corpus.check()
        return read_corpus(corpus, seed=seed, cache_dir=str(tmp_path / "cache"))

    return _read


def rows(dataset: Dataset) -> list[dict]:
    """The dataset's rows as dicts."""
    return dataset.to_list()


# ---------------------------------------------------------------------------------------------------- formats


def test_conllu_skips_comments_ranges_and_empty_nodes_and_keeps_spaces_in_forms(write, read):
    path = write("a.conllu", CONLLU)
    corpus = read("conllu", path, path, path)
    assert list(corpus) == ["train", "validation", "test"]
    assert [{key: row[key] for key in ("tokens", "tags")} for row in rows(corpus["test"])] == [
        {
            "tokens": ["I", "do", "n't", "like", "the", "New York", "film", "."],
            "tags": ["PRON", "AUX", "PART", "VERB", "DET", "PROPN", "NOUN", "PUNCT"],
        },
        {"tokens": ["It", "runs", "fast", "."], "tags": ["PRON", "VERB", "ADV", "PUNCT"]},
    ]
    # every column a head can read by name, beside the tags of tag_column
    first = rows(corpus["test"])[0]
    assert first["upos"] == first["tags"] and first["xpos"][:2] == ["PRP", "VBP"] and first["lemma"][2] == "not"
    assert first["deprel"][:2] == ["nsubj", "aux"] and first["misc"][6] == "SpaceAfter=No"
    xpos = read("conllu", path, path, tag_column="xpos")["train"]["tags"][0]
    assert xpos == ["PRP", "VBP", "RB", "VB", "DT", "NNP", "NN", "."]
    deprel = read("conllu", path, path, tag_column="DEPREL")["train"]["tags"][0]
    assert deprel == ["nsubj", "aux", "advmod", "root", "det", "compound", "obj", "punct"]
    with pytest.raises(ValueError, match="tag_column for conllu must be one of"):
        read("conllu", path, tag_column="pos")


def test_conll_skips_docstart_and_selects_the_tag_column(write, read):
    path = write("a.conll", CONLL)
    corpus = read("conll", path, path)
    assert rows(corpus["train"]) == [
        {"tokens": ["EU", "rejects", "German", "call"], "tags": ["I-ORG", "O", "I-MISC", "O"]},
        {"tokens": ["Peter", "Blackburn"], "tags": ["I-PER", "I-PER"]},
    ]
    assert read("conll", path, path, tag_column=1)["train"]["tags"][1] == ["NNP", "NNP"]
    assert read("conll", path, path, tag_column="2")["train"]["tags"][1] == ["B-NP", "I-NP"]
    assert read("conll", path, path, tag_scheme="iob2")["train"]["tags"] == [
        ["B-ORG", "O", "B-MISC", "O"],
        ["B-PER", "I-PER"],
    ]


def test_iob1_to_iob2_starts_every_chunk_with_b():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG", "I-ORG", "O", "B-LOC"]
    assert iob1_to_iob2(iob1) == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-ORG", "I-ORG", "O", "B-LOC"]
    assert iob1_to_iob2(["B-X", "I-X"]) == ["B-X", "I-X"]  # already IOB2: unchanged


def test_label_text_splits_on_ascii_whitespace_only(write, read):
    path = write("train.txt", "1 a 2\u00a01\\/2 star Film\n0\tdull ,  flat\n\n")
    corpus = read("label_text", path, path)
    assert rows(corpus["train"]) == [
        {"tokens": ["a", "2\u00a01\\/2", "star", "Film"], "label": "1"},
        {"tokens": ["dull", ",", "flat"], "label": "0"},
    ]
    assert tokenize(" x\u00a0y \t z\n") == ["x\u00a0y", "z"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.csv", 'id,sentence,sentiment\n1,"good, fun film",pos\n2,bad,neg\n'),
        ("a.tsv", 'sentence\tsentiment\n"good, fun film\tpos\nbad\tneg\n'),  # TSV: quotes are plain text
    ],
)
def test_csv_and_tsv_with_chosen_columns(write, read, name, content):
    path = write(name, content)
    corpus = read(name[-3:], path, path, text_column="sentence", label_column="sentiment")
    first = '"good,' if name.endswith("tsv") else "good,"
    assert rows(corpus["train"]) == [
        {"tokens": [first, "fun", "film"], "label": "pos"},
        {"tokens": ["bad"], "label": "neg"},
    ]


def test_jsonl_classification_and_tagging_with_int_tags(write, read):
    text = write("c.jsonl", '{"text": "a fine film", "label": 1}\n\n{"tokens": ["bad"], "label": "neg"}\n')
    assert rows(read("jsonl", text, text)["train"]) == [
        {"tokens": ["a", "fine", "film"], "label": "1"},
        {"tokens": ["bad"], "label": "neg"},
    ]
    tags = write("t.jsonl", '{"tokens": ["EU", "rejects"], "ner_tags": [3, 0]}\n')
    assert rows(read("jsonl", tags, tags, tags_column="ner_tags")["train"]) == [
        {"tokens": ["EU", "rejects"], "tags": ["3", "0"]}
    ]


def test_parquet_turns_class_labels_into_names(tmp_path, read):
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    path = str(tmp_path / "train.parquet")
    Dataset.from_dict({"sentence": ["great fun", "dull"], "label": [1, 0]}, features=features).to_parquet(path)
    corpus = read("parquet", path, path, text_column="sentence")
    assert rows(corpus["validation"]) == [
        {"tokens": ["great", "fun"], "label": "positive"},
        {"tokens": ["dull"], "label": "negative"},
    ]


TREES = """(3 (2 (2 The) (2 film)) (3 (2 is) (4 good)))
(2 (2 It) (2 exists))
(1 (2 The) (0 (2 film) (0 bad)))
"""


def test_sst_trees_binary_fine_and_subtrees(write, read):
    path = write("trees.txt", TREES)
    binary = read("sst_trees", path, path, path)
    assert rows(binary["test"]) == [
        {"tokens": ["The", "film", "is", "good"], "label": "positive"},
        {"tokens": ["The", "film", "bad"], "label": "negative"},
    ]
    assert read("sst_trees", path, path, granularity="fine")["train"]["label"] == ["3", "2", "1"]

    phrases = read("sst_trees", path, path, path, use_subtrees=True)
    train = collections.Counter((" ".join(r["tokens"]), r["label"]) for r in rows(phrases["train"]))
    assert train == {
        ("The film is good", "positive"): 1,
        ("is good", "positive"): 1,
        ("good", "positive"): 1,
        ("The film bad", "negative"): 1,
        ("film bad", "negative"): 1,
        ("bad", "negative"): 1,
    }
    assert rows(phrases["validation"]) == rows(phrases["test"]) == rows(binary["test"])  # evaluation: sentences only
    fine = read("sst_trees", path, path, granularity="fine", use_subtrees=True)["train"]
    assert fine.num_rows == 13  # 15 nodes, but "The" and "film" (label 2) come twice and are kept once
    assert ["The", "film"] in fine["tokens"]


def test_hub_on_a_local_parquet_directory_in_the_conll2003_schema(tmp_path, read):
    tags = ClassLabel(names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG"])
    features = Features(
        {
            "id": Value("string"),
            "tokens": List(Value("string")),
            "pos_tags": List(Value("int32")),
            "ner_tags": List(tags),
        }
    )
    hub = tmp_path / "conll2003"
    hub.mkdir()
    for split in ("train", "validation", "test"):
        data = {"id": ["0"], "tokens": [["EU", "rejects", "Peter"]], "pos_tags": [[1, 2, 1]], "ner_tags": [[3, 0, 1]]}
        Dataset.from_dict(data, features=features).to_parquet(str(hub / f"{split}.parquet"))
    corpus = read("hub", hub_name=str(hub), tags_column="ner_tags")
    assert list(corpus) == ["train", "validation", "test"]
    assert rows(corpus["test"]) == [{"tokens": ["EU", "rejects", "Peter"], "tags": ["B-ORG", "O", "B-PER"]}]
    with pytest.raises(DataFormatError, match=r"conll2003 \(train\), row 1: expected a 'tags' column .*'ner_tags'"):
        read("hub", hub_name=str(hub))


# ----------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("format", "name", "content", "message"),
    [
        (
            "conllu",
            "a.conllu",
            CONLLU.replace("\tdet\t_\t_", "\tdet\t_"),
            r"a\.conllu:9: expected 10 TAB-separated columns, found 9",
        ),
        ("conllu", "a.conllu", "# only a comment\n\n", r"a\.conllu: expected at least one sentence"),
        (
            "conllu",
            "a.conllu",
            "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n",
            r"a\.conllu:1: expected a sentence with at least one token",
        ),
        (
            "conllu",
            "a.conllu",
            "x\tHe\t_\t_\t_\t_\t_\t_\t_\t_\n",
            r"a\.conllu:1: expected a word ID like 3, 3-4 or 8\.1, found 'x'",
        ),
        (  # two sentences without the blank line between them (cat of a file that does not end with one)
            "conllu",
            "a.conllu",
            "1\tHe\t_\tPRON\t_\t_\t_\t_\t_\t_\n2\truns\t_\tVERB\t_\t_\t_\t_\t_\t_\n1\tGo\t_\tVERB\t_\t_\t_\t_\t_\t_\n",
            r"a\.conllu:3: expected word ID 3 \(each sentence counts its words from 1, after a blank line\), found 1",
        ),
        (
            "conll",
            "a.conll",
            CONLL.replace("call NN I-NP O", "call NN I-NP"),
            r"a\.conll:6: expected 4 columns like line 3, found 3",
        ),
        (
            "conllu",
            "a.conllu",
            CONLLU.replace("5\tthe\t", "5\t\t"),
            r"a\.conllu:9: expected a FORM \(column 2\) of one or more characters, found an empty one",
        ),
        ("conll", "a.conll", "EU\nrejects\n", r"a\.conll:1: expected a token and tag column -1, found 1 columns"),
        ("label_text", "a.txt", "1 good\n1\n", r"a\.txt:2: expected '<label> <text>', found '1'"),
        ("label_text", "a.txt", "1 good\n good film\n", r"a\.txt:2: expected '<label> <text>'"),
        ("label_text", "a.txt", "1 good\n0  \t\n", r"a\.txt:2: expected a sentence with at least one token"),
        ("label_text", "a.txt", "", r"a\.txt: expected at least one sentence, found none"),
        ("label_text", "a.txt", "\n  \n", r"a\.txt: expected at least one sentence, found none"),
        ("csv", "a.csv", "text,stars\ngood,5\n", r"a\.csv:1: no column 'label'; the header has \['text', 'stars'\]"),
        ("csv", "a.csv", "text,label\ngood,1\nbad\n", r"a\.csv:3: expected a value in column 'label'"),
        (
            "jsonl",
            "a.jsonl",
            '{"tokens": ["a", "b"], "tags": ["X"]}\n',
            r"a\.jsonl:1: expected one tag per token, found 2 tokens and 1 tags",
        ),
        ("jsonl", "a.jsonl", '{"text": "ok", "label": 1}\n{"text": "ok"\n', r"a\.jsonl:2: expected a JSON object"),
        (
            "jsonl",
            "a.jsonl",
            '{"tokens": ["a", "b"], "tags": ["X", "Y"]}\n{"tokens": ["a", ""], "tags": ["X", "Y"]}\n',
            r"a\.jsonl:2: expected tokens of one or more characters, found an empty one \(token 2\)",
        ),
        (
            "jsonl",
            "a.jsonl",
            '{"tokens": ["a\\ud800"], "label": "x"}\n',  # valid JSON, but no character
            r"a\.jsonl:1: expected Unicode text, found a lone surrogate U\+D800 in token 1",
        ),
        (
            "jsonl",
            "a.jsonl",
            '{"tokens": ["a"], "label": "x"}\n{"tokens": ["b"], "label": "\\udfff"}\n',
            r"a\.jsonl:2: expected Unicode text, found a lone surrogate U\+DFFF in the label",
        ),
        (
            "jsonl",
            "a.jsonl",
            '{"text": "ok", "label": 1}\n{"tokens": ["a"], "tags": ["X"]}\n',
            r"a\.jsonl:2: expected columns \['label', 'tokens'\] as before",
        ),
        (
            "jsonl",
            "a.jsonl",
            '{"sentence": "ok", "label": 1}\n',
            r"a\.jsonl:1: expected a 'tokens' list or a 'text' string; the columns are \['label', 'sentence'\]",
        ),
        ("sst_trees", "t.txt", "(3 (2 good) (2 film)\n", r"t\.txt:1: malformed tree: expected '\)' closing \(3"),
        ("sst_trees", "t.txt", "(3 (2 good) (2 film)))\n", r"t\.txt:1: malformed tree: expected the end of the line"),
        ("sst_trees", "t.txt", "(3 (2 good film))\n", r"t\.txt:1: malformed tree: expected '\)' closing \(2"),
        (
            "sst_trees",
            "t.txt",
            "(3 (2 good) (2 film))\n(7 (2 bad))\n",
            r"t\.txt:2: expected a sentiment label 0-4, found '7'",
        ),
    ],
)
def test_malformed_input_names_the_file_and_line(write, read, format, name, content, message):
    with pytest.raises(DataFormatError, match=message):
        read(format, write(name, content))


def test_parquet_tags_and_tokens_of_different_lengths(tmp_path, read):
    path = str(tmp_path / "t.parquet")
    Dataset.from_dict({"tokens": [["a"], ["b", "c"]], "tags": [["X"], ["Y"]]}).to_parquet(path)
    with pytest.raises(DataFormatError, match=r"t\.parquet: row 2: expected one tag per token, found 2 tokens and 1"):
        read("parquet", path)


def test_missing_file_and_bad_encoding(tmp_path, write, read):
    missing = str(tmp_path / "nowhere.conllu")
    with pytest.raises(FileNotFoundError, match=f"file not found: {missing}"):
        read("conllu", missing)
    latin1 = write("latin1.txt", "1 good\n1 caf\u00e9 noir\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.txt:2: cannot decode as utf-8 .*--data\.encoding"):
        read("label_text", latin1)
    assert read("label_text", latin1, latin1, encoding="latin-1")["train"]["tokens"][1] == ["caf\u00e9", "noir"]


def test_bad_options_are_refused(read, write):
    path = write("a.txt", "1 good\n")
    with pytest.raises(ValueError, match="data.format: expected one of"):
        read("xml", path)
    with pytest.raises(ValueError, match="data.tag_scheme: expected keep or iob2"):
        read("label_text", path, tag_scheme="iobes")
    with pytest.raises(ValueError, match="data.train_file: expected a file to train on"):
        read("label_text")


# ---------------------------------------------------------------------------------------------------- caching


def test_cache_is_keyed_on_the_file_content(write, read):
    path = write("a.txt", "1 good film\n0 bad film\n")
    first = read("label_text", path, path)["train"]
    again = read("label_text", path, path)["train"]
    assert again.cache_files == first.cache_files  # unchanged file: read from the cache
    write("a.txt", "1 great film\n0 bad film\n")
    changed = read("label_text", path, path)["train"]
    assert changed.cache_files != first.cache_files
    assert changed["tokens"][0] == ["great", "film"]
    assert read("label_text", path, path, encoding="ascii")["train"].cache_files != changed.cache_files  # options too


def test_a_failed_read_leaves_nothing_in_the_cache(write, read):
    path = write("a.txt", "1 good film\n1\n")
    for _ in range(2):  # the second attempt fails the same way: no half-written split was cached
        with pytest.raises(DataFormatError, match=r"a\.txt:2:"):
            read("label_text", path, path)
    write("a.txt", "1 good film\n1 ok\n")
    assert read("label_text", path, path)["train"]["tokens"] == [["good", "film"], ["ok"]]


def test_missing_validation_is_carved_from_train_and_logged(write, read, caplog):
    path = write("a.txt", "".join(f"{i % 2} sentence number {i}\n" for i in range(20)))
    with caplog.at_level(logging.INFO, logger="seqmodels"):
        corpus = read("label_text", path, val_fraction=0.25, seed=3)
    assert list(corpus) == ["train", "validation"]
    assert (corpus["train"].num_rows, corpus["validation"].num_rows) == (15, 5)
    assert "holding out 5 of 20 training sentences as validation" in caplog.text
    assert read("label_text", path, val_fraction=0.25, seed=3)["validation"]["tokens"] == corpus["validation"]["tokens"]
    assert read("label_text", path, val_fraction=0.25, seed=4)["validation"]["tokens"] != corpus["validation"]["tokens"]



def test_a_training_file_too_small_to_hold_out_validation_is_one_error_naming_it(write, read):
    path = write("one.txt", "1 good film\n")
    with pytest.raises(ValueError, match=r"one\.txt: 1 training sentence\(s\), too few .*--data\.val_file"):
        read("label_text", path, val_fraction=0.1)
    two = write("two.txt", "1 good film\n0 bad film\n")  # one held out, one to train on
    corpus = read("label_text", two, val_fraction=0.1)
    assert (corpus["train"].num_rows, corpus["validation"].num_rows) == (1, 1)


# -------------------------------------------------------------------------------------------------- real data

DATA_DIR = os.environ.get("SEQMODELS_DATA_DIR")
real_data = pytest.mark.skipif(DATA_DIR is None, reason="set SEQMODELS_DATA_DIR to the shared data folder")


def counts(corpus: datasets.DatasetDict, column: str) -> dict[str, collections.Counter]:
    """How often each value of ``column`` comes in each split."""
    return {split: collections.Counter(corpus[split][column]) for split in corpus}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """``read_corpus`` on a folder of SEQMODELS_DATA_DIR, with a cache shared by this module's tests."""
    cache_dir = str(tmp_path_factory.mktemp("real-cache"))

    def _read(format: str, folder: str, names: tuple[str, str, str], **kwargs) -> datasets.DatasetDict:
        files = dict(zip(("train_file", "val_file", "test_file"), (str(Path(DATA_DIR, folder, n)) for n in names)))
        return read_corpus(Corpus(format=format, **files, **kwargs), cache_dir=cache_dir)

    return _read


@real_data
def test_ud_english_ewt_counts(real):
    files = tuple(f"en_ewt-ud-{split}.conllu" for split in ("train", "dev", "test"))
    corpus = real("conllu", "ud_english_ewt", files)
    sizes = {split: (len(d), sum(map(len, d["tokens"]))) for split, d in corpus.items()}
    assert sizes == {"train": (12_544, 204_577), "validation": (2_001, 25_147), "test": (2_077, 25_094)}
    upos = collections.Counter(tag for tags in corpus["train"]["tags"] for tag in tags)
    assert (len(upos), upos["NOUN"], upos["PUNCT"], upos["X"]) == (17, 34_751, 23_596, 400)
    xpos = real("conllu", "ud_english_ewt", files, tag_column="xpos")
    assert len({tag for tags in xpos["train"]["tags"] for tag in tags}) == 49


@real_data
def test_sst2_counts(real):
    corpus = real("label_text", "sst2", ("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"))
    assert counts(corpus, "label") == {
        "train": {"0": 3_310, "1": 3_610},
        "validation": {"0": 428, "1": 444},
        "test": {"0": 912, "1": 909},
    }
    assert [sum(map(len, corpus[s]["tokens"])) for s in corpus] == [133_552, 17_046, 35_023]


@real_data
def test_sst_trees_counts_and_agreement_with_sst2(real):
    files = ("train.txt", "dev.txt", "test.txt")
    binary = real("sst_trees", "sst_trees", files)
    assert counts(binary, "label") == {
        "train": {"negative": 3_310, "positive": 3_610},
        "validation": {"negative": 428, "positive": 444},
        "test": {"negative": 912, "positive": 909},
    }
    sst2 = real("label_text", "sst2", ("stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"))
    names = {"0": "negative", "1": "positive"}
    for split in binary:  # the lower-cased tree sentences are exactly SST-2's sentences, with the same labels
        lowered = [tuple(token.lower() for token in tokens) for tokens in binary[split]["tokens"]]
        trees = zip(lowered, binary[split]["label"], strict=True)
        lines = zip(map(tuple, sst2[split]["tokens"]), [names[label] for label in sst2[split]["label"]], strict=True)
        assert sorted(trees) == sorted(lines)
    fine = real("sst_trees", "sst_trees", files, granularity="fine")
    assert [len(fine[s]) for s in fine] == [8_544, 1_101, 2_210]
    phrases = real("sst_trees", "sst_trees", files, use_subtrees=True)
    assert counts(phrases, "label")["train"] == {"negative": 34_944, "positive": 42_672}  # distinct non-neutral phrases
    assert [len(phrases[s]) for s in ("validation", "test")] == [872, 1_821]


@pytest.mark.parametrize(
    ("column", "before", "tag", "after"),
    [
        ("feats:Number", "Case=Nom|Number=Plur|Person=3", "Sing", "Case=Nom|Number=Sing|Person=3"),
        ("feats:Number", "Case=Nom|Number=Plur", "_", "Case=Nom"),  # "_": the word has no such feature
        ("feats:Number", "_", "_", "_"),
        ("feats:Number", "Mood=Ind|VerbForm=Fin", "Sing", "Mood=Ind|Number=Sing|VerbForm=Fin"),  # sorted, as CoNLL-U
        ("misc:NE", "SpaceAfter=No", "B-PER", "SpaceAfter=No|NE=B-PER"),  # MISC keeps its order
        ("upos", "_", "NOUN", "NOUN"),
    ],
)
def test_a_tag_is_written_into_its_column_or_attribute_as_conllu_wants(column, before, tag, after):
    field = ConlluTagField.parse(column)
    fields = ["1", "dogs", "dog", "_", "_", "_", "0", "root", "_", "_"]
    fields[field.column] = before
    written = field.set(fields, tag)
    assert written[field.column] == after and written[: field.column] == fields[: field.column]
    assert written[field.column + 1 :] == fields[field.column + 1 :]
