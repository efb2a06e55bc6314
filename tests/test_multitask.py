"""One encoder, several corpora: train.py trains a tagger on CoNLL-U and a classifier on SST trees together,
evaluates each on its own corpus, predicts and exports both heads; bad task/corpus wiring is one line."""

import json
import random
from pathlib import Path

import pytest

from seqmodels.inference import predict_cli as predict
from seqmodels.inference.loading import load_model
from seqmodels.cli import main
from seqmodels.inference.export import export_onnx

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "multitask_ud_sst.yaml")
SMALL = ["--model.encoder.embedding_dim", "8", "--model.encoder.hidden_size", "8", "--model.encoder.num_layers", "1",
         "--model.encoder.char_channels", "4", "--data.min_freq", "1", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]  # fmt: skip
WORDS = {"the": "DET", "film": "NOUN", "cast": "NOUN", "was": "AUX", "is": "AUX", "great": "ADJ", "dull": "ADJ"}


def write_files(root: Path) -> dict[str, Path]:
    """A tiny CoNLL-U treebank and tiny SST trees (with a word, "masterpiece", only the trees have), and raw text."""
    rng = random.Random(0)
    files = {}
    for split, n in (("train", 30), ("dev", 10), ("test", 10)):
        blocks = []
        for _ in range(n):
            words = [rng.choice(list(WORDS)) for _ in range(rng.randint(2, 6))]
            blocks.append("".join(f"{i}\t{w}\t{w}\t{WORDS[w]}\t_\t_\t0\tdep\t_\t_\n" for i, w in enumerate(words, 1)))
        files[f"ud_{split}"] = root / f"ud.{split}.conllu"
        files[f"ud_{split}"].write_text("\n".join(blocks) + "\n", encoding="utf-8")
        trees = []
        for _ in range(n):
            good = rng.random() < 0.5
            word = rng.choice(["great", "masterpiece"] if good else ["dull", "mess"])
            label = "4" if good else "0"
            trees.append(f"({label} (2 (2 the) (2 film)) ({label} (2 was) ({label} {word})))")
        files[f"sst_{split}"] = root / f"sst.{split}.txt"
        files[f"sst_{split}"].write_text("\n".join(trees) + "\n", encoding="utf-8")
    files["text"] = root / "raw.txt"
    files["text"].write_text("the cast was great\nthe film is dull\n" * 10, encoding="utf-8")
    return files


def corpus_args(files: dict[str, Path]) -> list[str]:
    args = []
    for corpus in ("ud", "sst"):
        for split, key in (("train", "train_file"), ("dev", "val_file"), ("test", "test_file")):
            args.append(f"--data.corpora.{corpus}.{key}={files[f'{corpus}_{split}']}")
    return args


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    files = write_files(root)
    args = ["fit", "--config", CONFIG, *SMALL, *corpus_args(files), "--trainer.max_epochs", "2",
            f"--data.cache_dir={root / 'cache'}", f"--trainer.logger.init_args.save_dir={root / 'logs'}"]  # fmt: skip
    cli = main(args)
    (metrics,) = root.glob("logs/multitask_ud_sst/version_0/metrics_fit.json")
    return {"root": root, "files": files, "cli": cli, "metrics": json.loads(metrics.read_text())}


def test_each_head_learns_from_its_own_corpus_on_one_encoder(trained):
    model, data = trained["cli"].model, trained["cli"].datamodule
    assert list(model.heads) == ["tagger", "classifier"] and data.feeds == {"ud": ("tagger",), "sst": ("classifier",)}
    assert "masterpiece" in model.vocabularies["tokens"] and "film" in model.vocabularies["tokens"]  # shared vocabulary
    assert set(model.vocabularies["tagger"].itos) == set(WORDS.values())  # UD's tags only
    assert model.vocabularies["classifier"].itos == ["negative", "positive"]
    metrics = trained["metrics"]
    for stage in ("val", "test"):
        assert {f"{stage}/tagger/acc", f"{stage}/classifier/acc", f"{stage}/multitask/score"} <= set(metrics)
        mean = (metrics[f"{stage}/tagger/acc"] + metrics[f"{stage}/classifier/acc"]) / 2
        assert metrics[f"{stage}/multitask/score"] == pytest.approx(mean, abs=1e-6)
    assert trained["cli"].trainer.checkpoint_callback.monitor == "val/multitask/score"


def test_a_multitask_checkpoint_predicts_and_exports_both_heads(trained, capsys, tmp_path):
    (checkpoint,) = trained["root"].glob("logs/multitask_ud_sst/version_0/checkpoints/last.ckpt")
    predict.main([str(checkpoint), "the film was great", "the cast is dull"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(len(r["tags"]) == len(r["tokens"]) and r["label"] in ("negative", "positive") for r in records)
    pytest.importorskip("onnxruntime")
    wrapper = export_onnx(load_model(checkpoint), tmp_path / "model.onnx")  # verified against the model: parity
    assert wrapper.output_names == ["tagger", "classifier"]


@pytest.mark.parametrize(("step", "steps_per_epoch"), [("one_corpus", 1 + 1), ("every_corpus", 1)])
def test_a_step_takes_one_corpus_or_every_corpus(trained, tmp_path, step, steps_per_epoch):
    """30 sentences a corpus in batches of 32: one batch each; one_corpus steps through both, every_corpus takes
    both in one step."""
    args = ["fit", "--config", CONFIG, *SMALL, *corpus_args(trained["files"]), "--trainer.max_epochs", "2",
            "--data.step", step, f"--data.cache_dir={trained['root'] / 'cache'}",
            f"--trainer.logger.init_args.save_dir={tmp_path}"]  # fmt: skip
    cli = main(args)
    assert cli.trainer.global_step == 2 * steps_per_epoch


def test_a_run_shorter_than_a_multi_corpus_epoch_validates_checkpoints_and_tests(trained, tmp_path, capsys):
    """An epoch is a batch of each corpus (round robin); one step of it is validated on both corpora, with the
    weight averaging of multitask_ud_sst.yaml, saved as the best checkpoint, and tested."""
    args = ["fit", "--config", CONFIG, *SMALL, *corpus_args(trained["files"]), "--trainer.max_steps", "1",
            f"--data.cache_dir={trained['root'] / 'cache'}", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    cli = main(args)
    assert cli.trainer.global_step == 1 and cli.trainer.num_training_batches == 2
    checkpoints = tmp_path / "multitask_ud_sst" / "version_0" / "checkpoints"
    assert cli.trainer.checkpoint_callback.best_model_path == str(checkpoints / "epoch=0-step=1.ckpt")
    assert (checkpoints / "last.ckpt").is_file()
    assert f"best checkpoint: {checkpoints / 'epoch=0-step=1.ckpt'}" in capsys.readouterr().out
    metrics = json.loads((checkpoints.parent / "metrics_fit.json").read_text())
    names = ("tagger/acc", "classifier/acc", "multitask/score")
    assert {f"{stage}/{name}" for stage in ("val", "test") for name in names} <= set(metrics)


def test_the_language_model_learns_from_raw_text_beside_the_tagger(trained, tmp_path):
    files = trained["files"]
    args = ["fit", "--config", CONFIG, *SMALL, "--model.classifier", "null", "--model.lm", "{vocab_size: 50}",
            "--model.multitask_score", "null", "--checkpoint.monitor", "val/tagger/acc",
            "--model.lr_scheduler.init_args.monitor", "val/tagger/acc",
            "--data.corpora", json.dumps({"ud": {"format": "conllu", "train_file": str(files["ud_train"]),
                                                 "val_file": str(files["ud_dev"]), "heads": ["tagger"]},
                                          "raw": {"format": "text", "train_file": str(files["text"]), "heads": ["lm"]}}),
            "--trainer.max_epochs", "1", f"--data.cache_dir={trained['root'] / 'cache'}",
            f"--trainer.logger.init_args.save_dir={tmp_path}"]  # fmt: skip
    cli = main(args)
    assert cli.datamodule.feeds == {"ud": ("tagger",), "raw": ("lm",)}
    assert {"val/lm/perplexity", "val/tagger/acc"} <= set(cli.trainer.callback_metrics)


def one_line_error(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data.corpora.sst.heads", "[lm]", "--model.lm", "{}", "--model.encoder.bidirectional", "false"],
         "the classifier head has no corpus"),
        (["--data.corpora.sst.format", "conllu", "--data.corpora.sst.heads", "null"],
         "the tagger head is fed by two corpora (ud, sst)"),
        (["--data.corpora.ud.heads", "[classifier]"],
         "corpus 'ud' cannot feed the classifier head: it reads the column 'label', and the corpus has deprel, feats"),
        (["--checkpoint.monitor", "val/lm/perplexity"], "checkpoint.monitor watches val/lm/perplexity, which no head logs"),
    ],
    ids=["task-without-corpus", "two-corpora-one-head", "annotations-the-head-cannot-use", "monitor-nobody-logs"],
)
def test_bad_wiring_is_one_line_naming_corpus_and_task(trained, tmp_path, capsys, extra, message):
    files = dict(trained["files"])
    if "conllu" in extra:  # two CoNLL-U corpora
        files |= {f"sst_{split}": files[f"ud_{split}"] for split in ("train", "dev", "test")}
    args = ["fit", "--config", CONFIG, *SMALL, *corpus_args(files), "--trainer.max_epochs", "1", *extra,
            f"--data.cache_dir={trained['root'] / 'cache'}", f"--trainer.logger.init_args.save_dir={tmp_path}"]  # fmt: skip
    line = one_line_error(capsys, args)
    assert message in line, line
    assert not list(tmp_path.rglob("*.ckpt"))
