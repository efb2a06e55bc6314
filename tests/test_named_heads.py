"""Heads as named instances that own their column: three taggers of one CoNLL-U corpus (UPOS, XPOS, DEPREL), a
sentence regressor, and bad wiring as one line naming the head and the corpus."""

import json
import random
from pathlib import Path

import pytest

from seqmodels.cli import main
from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor

SMALL = ["--model.encoder.embedding_dim", "8", "--model.encoder.hidden_size", "8", "--trainer.enable_progress_bar",
         "false", "--trainer.enable_model_summary", "false", "--trainer.max_epochs", "2"]  # fmt: skip
# word: (UPOS, XPOS, DEPREL, FEATS)
WORDS = {"the": ("DET", "DT", "det", "Definite=Def"), "film": ("NOUN", "NN", "nsubj", "Number=Sing"),
         "films": ("NOUN", "NNS", "nsubj", "Number=Plur"), "was": ("AUX", "VBD", "cop", "Tense=Past"),
         "is": ("AUX", "VBZ", "cop", "Tense=Pres"), "great": ("ADJ", "JJ", "root", "Degree=Pos")}  # fmt: skip
THREE_TAGGERS = ('{upos: {type: tagger, column: upos}, xpos: {type: tagger, column: xpos, crf: true}, '
                 'deprel: {type: tagger, column: deprel}}')  # fmt: skip


def conllu(path: Path, n: int, seed: int, feats: bool = True) -> Path:
    rng = random.Random(seed)
    blocks = []
    for _ in range(n):
        words = [rng.choice(list(WORDS)) for _ in range(rng.randint(2, 6))]
        lines = [f"{i}\t{w}\t{w}\t{WORDS[w][0]}\t{WORDS[w][1]}\t{WORDS[w][3] if feats else '_'}\t0\t{WORDS[w][2]}\t_\t_\n"
                 for i, w in enumerate(words, 1)]  # fmt: skip
        blocks.append("".join(lines))
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return path


def scored(path: Path, n: int, seed: int, bad_line: int | None = None) -> Path:
    """JSON Lines of texts with a number (how many "great"s), optionally one that is not a number."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(["great", "film", "the", "was"]) for _ in range(rng.randint(2, 6))]
        score = "lots" if i + 1 == bad_line else words.count("great")
        lines.append(json.dumps({"text": " ".join(words), "label": score}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def files(root: Path, **options) -> list[str]:
    return [f"--data.train_file={conllu(root / 'train.conllu', 40, 0, **options)}",
            f"--data.val_file={conllu(root / 'dev.conllu', 10, 1, **options)}",
            f"--data.test_file={conllu(root / 'test.conllu', 10, 2, **options)}"]  # fmt: skip


def fit(root: Path, *args: str):
    return main(["fit", "--config", str(Path(__file__).parents[1] / "configs" / "tagger.yaml"), "--data.format",
                 "conllu", *SMALL, f"--data.cache_dir={root / 'cache'}",
                 f"--trainer.logger.init_args.save_dir={root / 'logs'}", *args])  # fmt: skip


@pytest.fixture(scope="module")
def three_taggers(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    cli = fit(root, *files(root), "--model.tagger", "null", "--model.heads", THREE_TAGGERS, "--trainer.max_epochs", "40",
              "--model.optimizer.init_args.lr", "0.02")
    (metrics,) = root.glob("logs/*/version_0/metrics_fit.json")
    return root, cli, json.loads(metrics.read_text())


def test_three_taggers_of_one_corpus_train_evaluate_and_predict_by_their_names(three_taggers):
    root, cli, metrics = three_taggers
    for name in ("upos", "xpos", "deprel"):
        assert metrics[f"test/{name}/acc"] > 0.9, (name, metrics)
    model = load_model(cli.trainer.checkpoint_callback.best_model_path)
    assert model.heads["upos"].classes == ["ADJ", "AUX", "DET", "NOUN"]
    assert model.heads["deprel"].classes == ["cop", "det", "nsubj", "root"]
    (record,) = Predictor(model)([["the", "films", "is", "great"]])
    assert set(record) == {"upos", "upos_probs", "xpos", "xpos_crf_path", "deprel", "deprel_probs"}
    assert len(record["upos"]) == len(record["xpos"]) == len(record["deprel"]) == 4


def test_a_regressor_learns_a_number_per_sentence(tmp_path):
    data = [f"--data.{key}={scored(tmp_path / f'{split}.jsonl', n, seed)}"
            for key, split, n, seed in (("train_file", "train", 80, 0), ("val_file", "dev", 20, 1),
                                        ("test_file", "test", 20, 2))]  # fmt: skip
    cli = main(["fit", "--config", str(Path(__file__).parents[1] / "configs" / "classifier.yaml"), "--data.format",
                "jsonl", *SMALL, "--trainer.max_epochs", "40", "--model.classifier", "null", "--model.heads",
                "{score: {type: regressor, column: label, dropout: 0.0}}", f"--data.cache_dir={tmp_path / 'cache'}",
                f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}", *data])  # fmt: skip
    (metrics,) = tmp_path.glob("logs/*/version_0/metrics_fit.json")
    test = json.loads(metrics.read_text())
    assert {"test/score/pearson", "test/score/spearman", "test/score/mae"} <= set(test)
    assert test["test/score/pearson"] > 0.5, test
    (record,) = Predictor(load_model(cli.trainer.checkpoint_callback.best_model_path))([["great", "great", "film"]])
    assert set(record) == {"score"} and isinstance(record["score"], float)


def one_line_error(capsys, run) -> str:
    """The one error line of a run that stops (the rest of stderr is progress)."""
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.mark.parametrize(
    ("heads", "feats", "message"),
    [
        ("{lemmas: {type: tagger, column: lemmas}}", True,
         "the lemmas head has no corpus: it reads the column 'lemmas', and no corpus feeds it ('data' has deprel, "
         "feats, lemma, misc, tags, upos, xpos)"),
        ("{feats: {type: tagger, column: feats}}", False,
         "train.conllu (data): the feats head reads the column 'feats', which holds only '_' (no annotation)"),
        ("{upos: {type: tager, column: upos}}", True,
         "the upos head: no head type is registered as 'tager'; the registered types are ['classifier', 'lm', "),
        ("{tokens: {type: tagger, column: upos}}", True, "a head cannot be named 'tokens'"),
    ],
    ids=["missing-column", "column-all-underscores", "unknown-type", "reserved-name"],
)
def test_bad_wiring_is_one_line_naming_the_head_and_the_corpus(tmp_path, capsys, heads, feats, message):
    line = one_line_error(capsys, lambda: fit(tmp_path, *files(tmp_path, feats=feats), "--model.tagger", "null",
                                              "--model.heads", heads))  # fmt: skip
    assert message in line, line


def test_a_regression_target_that_is_not_a_number_names_the_file_and_the_sentence(tmp_path, capsys):
    train = scored(tmp_path / "train.jsonl", 20, 0, bad_line=7)
    line = one_line_error(capsys, lambda: main([
        "fit", "--config", str(Path(__file__).parents[1] / "configs" / "classifier.yaml"), "--data.format", "jsonl",
        *SMALL, "--model.classifier", "null", "--model.heads", "{score: {type: regressor}}", f"--data.train_file={train}",
        f"--data.cache_dir={tmp_path / 'cache'}", f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}"]))
    bad = json.loads(train.read_text().splitlines()[6])["text"]
    assert f"{train} (data): the score head expected a number, found 'lots' (sentence '{bad}')" in line, line
