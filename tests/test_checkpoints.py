"""Checkpoints own loading: a checkpoint records every data option that changes what the model reads, and
prediction from it (seqmodels-predict, train.py predict) equals what train.py test scored."""

import json
import random
import warnings

import pytest
import torch

from seqmodels.checkpoints import DEFAULT_DATA_OPTIONS, read_checkpoint
from seqmodels.cli import main
from seqmodels.inference import predict_cli
from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor

TAGGED = {"extraordinarily": "ADV", "understandable": "ADJ", "performances": "NOUN", "the": "DET", "cast": "NOUN",
          "was": "AUX", "remarkably": "ADV", "unconvincing": "ADJ", "screenwriters": "NOUN", "wrote": "VERB",
          "unforgettable": "ADJ", "dialogue": "NOUN", "i": "PRON", "liked": "VERB", "it": "PRON"}  # fmt: skip


def write_conllu(path, sentences: int, seed: int) -> None:
    """Sentences of words up to 15 characters long (longer than --data.max_word_length 8), as CoNLL-U."""
    rng = random.Random(seed)
    words = list(TAGGED)
    blocks = []
    for n in range(sentences):
        chosen = [rng.choice(words) for _ in range(rng.randint(2, 7))]
        lines = [f"# sent_id = {n}"] + [f"{i}\t{w}\t{w}\t{TAGGED[w]}\t_\t_\t0\tdep\t_\t_" for i, w in enumerate(chosen, 1)]
        blocks.append("\n".join(lines) + "\n")
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A word+character tagger trained by train.py with --data.max_word_length 8, and its test-split metrics."""
    root = tmp_path_factory.mktemp("trained")
    for split, seed in (("train", 0), ("dev", 1), ("test", 2)):
        write_conllu(root / f"{split}.conllu", 40, seed)
    args = ["--config", "configs/ud_upos.yaml", f"--data.train_file={root / 'train.conllu'}",
            f"--data.val_file={root / 'dev.conllu'}", f"--data.test_file={root / 'test.conllu'}",
            "--data.max_word_length", "8", "--data.min_freq", "1", "--model.encoder.embedding_dim", "8",
            "--model.encoder.hidden_size", "8", "--model.encoder.char_channels", "6", "--trainer.max_epochs", "2",
            "--trainer.enable_progress_bar", "false", f"--data.cache_dir={root / 'cache'}",
            f"--trainer.logger.init_args.save_dir={root / 'logs'}"]  # fmt: skip
    main(["fit", *args])
    (checkpoint,) = root.glob("logs/ud_upos/version_0/checkpoints/last.ckpt")
    main(["test", *args, "--ckpt_path", str(checkpoint)])
    main(["predict", *args, "--data.batch_size", "8", "--ckpt_path", str(checkpoint)])  # 5 batches, sorted by length
    (metrics,) = root.glob("logs/ud_upos/version_*/metrics_test.json")
    (predictions,) = root.glob("logs/ud_upos/version_*/predictions.jsonl")
    return {"root": root, "checkpoint": checkpoint, "metrics": json.loads(metrics.read_text()),
            "predictions": [json.loads(line) for line in predictions.read_text().splitlines()]}  # fmt: skip


def test_the_checkpoint_records_the_data_options(trained):
    options = read_checkpoint(trained["checkpoint"])["hyper_parameters"]["data_options"]
    assert options == {"max_word_length": 8, "lowercase": False,
                       "columns": {"tagger": {"format": "conllu", "column": "upos", "scheme": "keep"}}}  # fmt: skip


def test_seqmodels_predict_gives_what_train_py_test_scored(trained, capsys):
    """Words are cut to 8 characters at prediction as in evaluation: the predicted tags score exactly the
    test accuracy train.py reported, and the records equal train.py predict's (one prediction path)."""
    test_file = trained["root"] / "test.conllu"
    predict_cli.main([str(trained["checkpoint"]), "--input", str(test_file), "--format", "jsonl"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gold = [[line.split("\t")[3] for line in block.splitlines() if line[0].isdigit()]
            for block in test_file.read_text().strip().split("\n\n")]  # fmt: skip
    pairs = [(p, g) for record, tags in zip(records, gold, strict=True) for p, g in zip(record["tags"], tags, strict=True)]
    accuracy = sum(p == g for p, g in pairs) / len(pairs)
    assert accuracy == pytest.approx(trained["metrics"]["test/tagger/acc"], abs=1e-6)
    assert len(records) == len(trained["predictions"])
    for ours, theirs in zip(records, trained["predictions"], strict=True):
        assert ours["tokens"] == theirs["tokens"] and ours["tags"] == theirs["tags"]
        assert ours["tag_probs"] == pytest.approx(theirs["tag_probs"], abs=1e-5)


def test_the_cut_matters_so_a_checkpoint_without_it_would_predict_otherwise(trained):
    """The same model reading 20 characters per word (the old hard-coded default) scores other probabilities."""
    model = load_model(trained["checkpoint"])
    sentences = [record["tokens"] for record in trained["predictions"]]
    as_trained = Predictor(model)(sentences)
    model.hparams.data_options = model.hparams.data_options | {"max_word_length": 20}
    uncut = Predictor(model)(sentences)
    assert any(a["tag_probs"] != b["tag_probs"] for a, b in zip(as_trained, uncut))


def test_a_checkpoint_from_0_2_0_loads_with_the_old_defaults_and_says_so(trained, tmp_path):
    checkpoint = torch.load(trained["checkpoint"], weights_only=True)
    del checkpoint["hyper_parameters"]["data_options"]
    checkpoint["seqmodels"]["format"] = 2
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(tmp_path / "old.ckpt")
    assert any("records no data options (written before seqmodels 0.3.0)" in str(w.message) for w in caught)
    assert model.hparams.data_options == DEFAULT_DATA_OPTIONS  # 20 characters per word, as 0.2.0 read them
    assert Predictor(model)([["the", "cast"]])[0]["tags"]


def test_train_py_predict_reads_a_predict_file_and_says_which_split(trained, capsys):
    source = trained["root"] / "other.conllu"
    write_conllu(source, 5, seed=7)
    args = ["predict", "--config", "configs/ud_upos.yaml", f"--data.train_file={trained['root'] / 'train.conllu'}",
            f"--data.val_file={trained['root'] / 'dev.conllu'}", f"--data.predict_file={source}", "--data.max_word_length", "8", "--model.encoder.embedding_dim", "8",
            "--model.encoder.hidden_size", "8", "--model.encoder.char_channels", "6", "--data.min_freq", "1",
            f"--data.cache_dir={trained['root'] / 'cache'}", f"--trainer.logger.init_args.save_dir={trained['root'] / 'p'}",
            "--ckpt_path", str(trained["checkpoint"])]  # fmt: skip
    main(args)
    assert "Predicting the predict split" in capsys.readouterr().out
    (written,) = (trained["root"] / "p").glob("ud_upos/version_*/predictions.jsonl")
    records = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(records) == 5 and all(len(r["tags"]) == len(r["tokens"]) == len(r["tag_probs"]) for r in records)
