"""Heads as named instances that own their column: three taggers of one CoNLL-U corpus (UPOS, XPOS, DEPREL) and a
sentence regressor, each trained, evaluated, predicted, exported with parity, served and shown by seqmodels-shapes;
bad wiring as one line naming the head and the corpus."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastapi.testclient import TestClient

from seqmodels.cli import main
from seqmodels.inference.export import export_onnx
from seqmodels.inference.loading import load_model
from seqmodels.inference.onnx_runtime import OnnxPredictor
from seqmodels.inference.predict_cli import main as predict_main
from seqmodels.inference.predictor import Predictor
from seqmodels.inference.server.app import Settings, create_app
from seqmodels.models.heads import HEADS
from seqmodels.shapes import parse_args as shapes_args
from seqmodels.shapes import shape_rows

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
        upos, xpos, deprel, morphology = zip(*(WORDS[w] for w in words))
        lines = [f"{i}\t{w}\t{w}\t{upos[i - 1]}\t{xpos[i - 1]}\t{morphology[i - 1] if feats else '_'}\t0\t"
                 f"{deprel[i - 1]}\t_\t_\n" for i, w in enumerate(words, 1)]  # fmt: skip
        blocks.append("".join(lines))
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return path


def scored(path: Path, n: int, seed: int, bad_line: int | None = None, bad: str = "lots") -> Path:
    """JSON Lines of texts with a number (how many "great"s), optionally one that is ``bad``."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(["great", "film", "the", "was"]) for _ in range(rng.randint(2, 6))]
        score = bad if i + 1 == bad_line else words.count("great")
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
    cli = fit(root, *files(root), "--model.tagger", "null", "--model.heads", THREE_TAGGERS,
              "--trainer.max_epochs", "40", "--model.optimizer.init_args.lr", "0.02")
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


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    root = tmp_path_factory.mktemp("regressor")
    data = [f"--data.{key}={scored(root / f'{split}.jsonl', n, seed)}"
            for key, split, n, seed in (("train_file", "train", 80, 0), ("val_file", "dev", 20, 1),
                                        ("test_file", "test", 20, 2))]  # fmt: skip
    cli = main(["fit", "--config", str(Path(__file__).parents[1] / "configs" / "classifier.yaml"), "--data.format",
                "jsonl", *SMALL, "--trainer.max_epochs", "40", "--model.classifier", "null", "--model.heads",
                "{score: {type: regressor, column: label, dropout: 0.0}}", f"--data.cache_dir={root / 'cache'}",
                f"--trainer.logger.init_args.save_dir={root / 'logs'}", *data])  # fmt: skip
    (metrics,) = root.glob("logs/*/version_0/metrics_fit.json")
    return root, cli, json.loads(metrics.read_text())


def test_a_regressor_learns_a_number_per_sentence(regressor):
    root, cli, test = regressor
    assert {"test/score/pearson", "test/score/spearman", "test/score/mae"} <= set(test)
    assert test["test/score/pearson"] > 0.5, test
    (record,) = Predictor(load_model(cli.trainer.checkpoint_callback.best_model_path))([["great", "great", "film"]])
    assert set(record) == {"score"} and isinstance(record["score"], float)


@pytest.mark.parametrize("trained", ["three_taggers", "regressor"])
def test_the_new_tasks_export_with_parity_and_serve_every_head(trained, request, tmp_path):
    """ONNX export predicts what the checkpoint does; the server answers each head's fields and lists the heads."""
    pytest.importorskip("onnxruntime")
    _, cli, _ = request.getfixturevalue(trained)
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    model = load_model(checkpoint)
    sentences = [["the", "films", "is", "great"], ["great", "film"]]
    export_onnx(model, tmp_path / "model.onnx")
    expected, exported = Predictor(model)(sentences), OnnxPredictor(tmp_path / "model.onnx")(sentences)
    for mine, theirs in zip(expected, exported):
        assert mine.keys() == theirs.keys()
        for key, value in mine.items():
            assert theirs[key] == (pytest.approx(value, abs=1e-4) if "probs" in key or key == "score" else value)
    with TestClient(create_app(Settings(checkpoint))) as session:
        until_ready(session)
        answer = session.post("/predict", json={"tokens": sentences[0]}).json()
        heads = session.get("/info").json()["heads"]
    assert list(heads) == list(model.heads) and {"tokens", *expected[0]} == set(answer)
    assert all(heads[name]["fields"] == list(head.fields) for name, head in model.heads.items())


def until_ready(session: TestClient) -> None:
    for _ in range(600):
        if session.get("/health/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the server did not load the model")


def test_shapes_reads_the_new_configs():
    """seqmodels-shapes on ud_joint.yaml and sst_fine_regression.yaml: a row per head, named after it."""
    configs = Path(__file__).parents[1] / "configs"
    joint = {row.name: row.shape for row in shape_rows(**shapes_args(["--config", str(configs / "ud_joint.yaml")]))}
    assert {"upos scores", "xpos scores", "feats scores"} <= set(joint)
    assert joint["upos scores"][:2] == joint["feats scores"][:2]  # (B, T, classes of its own)
    regression = shape_rows(**shapes_args(["--config", str(configs / "sst_fine_regression.yaml")]))
    (score,) = [row for row in regression if row.name == "score scores"]
    assert len(score.shape) == 1  # (B,): a number per sentence


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


def test_a_head_given_in_part_on_the_command_line_is_refused_before_the_data_is_read(tmp_path, capsys):
    """``--model.heads.xpos.crf=true`` replaces ud_joint.yaml's whole xpos entry: refused at once, saying how to give
    it (a training file that does not exist shows that nothing was read first)."""
    line = one_line_error(capsys, lambda: main([
        "fit", "--config", str(Path(__file__).parents[1] / "configs" / "ud_joint.yaml"), "--model.heads.xpos.crf=true",
        f"--data.train_file={tmp_path / 'missing.conllu'}", f"--trainer.logger.init_args.save_dir={tmp_path}"]))
    assert "the xpos head: no head type is registered as 'xpos'" in line, line
    assert "--model.heads.xpos.KEY=VALUE replaces the head's whole entry: give it whole" in line, line


@pytest.mark.parametrize("bad", ["lots", "nan", "-inf"])
def test_a_regression_target_that_is_not_a_finite_number_names_the_file_and_the_sentence(tmp_path, capsys, bad):
    """Not a number, or NaN (which pads token targets: it would be read as no target) or infinite."""
    train = scored(tmp_path / "train.jsonl", 20, 0, bad_line=7, bad=bad)
    line = one_line_error(capsys, lambda: main([
        "fit", "--config", str(Path(__file__).parents[1] / "configs" / "classifier.yaml"), "--data.format", "jsonl",
        *SMALL, "--model.classifier", "null", "--model.heads", "{score: {type: regressor}}",
        f"--data.train_file={train}", f"--data.cache_dir={tmp_path / 'cache'}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}"]))
    sentence = json.loads(train.read_text().splitlines()[6])["text"]
    assert f"{train} (data): the score head expected a finite number, found '{bad}' (sentence '{sentence}')" in line


def test_conllu_output_fills_each_taggers_column_and_no_other(three_taggers, tmp_path):
    """seqmodels-predict --input x.conllu --output y.conllu: UPOS, XPOS and DEPREL get the predictions; every other
    column (and every comment) is the input's."""
    root, cli, _ = three_taggers
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    source = conllu(tmp_path / "x.conllu", 5, 7)
    blank = "\n".join("\t".join([*line.split("\t")[:3], "_", "_", *line.split("\t")[5:7], "_", *line.split("\t")[8:]])
                      if line else line for line in source.read_text(encoding="utf-8").split("\n"))  # fmt: skip
    source.write_text("# sent_id = 1\n" + blank, encoding="utf-8")
    predict_main([checkpoint, "--input", str(source), "--output", str(tmp_path / "y.conllu")])
    records = Predictor(load_model(checkpoint))
    read, written = (path.read_text(encoding="utf-8").strip().split("\n\n") for path in (source, tmp_path / "y.conllu"))
    assert len(read) == len(written) == 5
    for before, after in zip(read, written):
        before_words = [line.split("\t") for line in before.splitlines() if not line.startswith("#")]
        after_words = [line.split("\t") for line in after.splitlines() if not line.startswith("#")]
        (record,) = records([[word[1] for word in before_words]])
        assert [word[3] for word in after_words] == record["upos"]
        assert [word[4] for word in after_words] == record["xpos"]
        assert [word[7] for word in after_words] == record["deprel"]
        for old, new in zip(before_words, after_words):
            assert [old[i] for i in (0, 1, 2, 5, 6, 8, 9)] == [new[i] for i in (0, 1, 2, 5, 6, 8, 9)]
        assert [line for line in before.splitlines() if line.startswith("#")] == \
            [line for line in after.splitlines() if line.startswith("#")]  # fmt: skip


def test_a_head_type_from_outside_the_package_reads_a_column_of_its_own(tmp_path, monkeypatch):
    """As README's "Add a task" says: a head class in the user's own module, configured by its import path, whose
    ``column`` names a column no built-in head reads (the lemma), learns from it with nothing else changed; a new
    process (``seqmodels-predict``) imports it from the checkpoint's config."""
    (tmp_path / "my_heads.py").write_text(
        "from seqmodels.models.heads.tagger import TaggingHead\n\n\nclass LemmaHead(TaggingHead):\n"
        "    name, column, fields = 'lemmatizer', 'lemma', ('lemmas', 'lemma_probs', 'lemma_crf_path')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cli = fit(tmp_path, *files(tmp_path), "--model.tagger", "null", "--model.heads",
                  "{lemmatizer: {type: my_heads.LemmaHead}}")  # fmt: skip
    finally:
        HEADS.pop("my_heads.LemmaHead", None)
    assert cli.model.heads["lemmatizer"].classes == sorted(WORDS)  # the sample's lemmas are its words
    metrics = json.loads(next(tmp_path.glob("logs/*/version_0/metrics_fit.json")).read_text())
    assert "test/lemmatizer/acc" in metrics
    checkpoint = next(tmp_path.glob("logs/*/version_0/checkpoints/last.ckpt"))
    done = subprocess.run([sys.executable, "-m", "seqmodels.inference.predict_cli", str(checkpoint), "film was dull"],
                          capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(tmp_path)},
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["lemmas"]) == 3
