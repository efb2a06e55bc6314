"""Bad input through the entry points users run: ``train.py`` (``seqmodels.cli.main``) and ``seqmodels-predict``.

Each case ends the run with a non-zero exit and one line that names the file (and line) or the key and what was
expected, with no traceback; a failed run leaves nothing behind that breaks the next one.
"""

import importlib
import io
import sys
from pathlib import Path

import datasets
import pytest
import torch
from helpers import CONFIGS, CONLLU, TRAIN_PY, run

from seqmodels import runs
from seqmodels.inference import predict_cli as predict
from seqmodels.cli import main
from seqmodels.data.embeddings import check_dimension
from seqmodels.data.readers import DataFormatError

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--model.encoder.embedding_dim", "8", "--model.encoder.hidden_size", "8"]  # checkpoints in seconds
SYNTHETIC = ["--data.train_size", "48", "--data.val_size", "16", "--data.test_size", "16"]
NINE_COLUMNS = CONLLU.replace("\tdet\t_\t_", "\tdet\t_")  # line 9, the det line, lacks its MISC column
LABEL_TEXT = "pos a good film\nneg a dull film\npos great\nneg bad\n"


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    """No "Generating train split" bars on stderr, and no tracebacks asked for by the environment."""
    monkeypatch.delenv("SEQMODELS_DEBUG", raising=False)
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    yield
    if enabled:
        datasets.enable_progress_bars()


def error_line(stderr: str) -> str:
    """The one line on stderr, which says ``error:``: no traceback, nothing else but Python warnings and Lightning's
    "Seed set to 0"."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
    lines = [line for line in lines if "Warning: " not in line and not line.endswith("Seed set to 0")]
    assert len(lines) == 1 and "error: " in lines[0], stderr
    return lines[0]


def train_py(capsys, *args: str, config: str = "tagger.yaml", subcommand: str = "fit") -> tuple[int, str]:
    """``train.py SUBCOMMAND --config configs/CONFIG ARGS`` in-process (cwd: a tmp_path): exit code and error line."""
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--config", str(CONFIGS / config), *QUIET, "--data.cache_dir", "cache", *args], CONFIGS)
    return exit_info.value.code, error_line(capsys.readouterr().err)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in tmp_path (logs/ and the cache go there), as ``train.py`` (pytest's own arguments out of sys.argv)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py"])
    return tmp_path


def write(path: Path, content: str | bytes) -> str:
    """Write text (UTF-8) or bytes to ``path``; its name, as a command line in its folder names it."""
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path.name


# ------------------------------------------------------------------------------------------------- data files

DATA_ERRORS = {
    "conllu-wrong-column-count": (
        "conllu",
        "a.conllu",
        NINE_COLUMNS,
        "a.conllu:9: expected 10 TAB-separated columns, found 9",
    ),
    "conll-missing-tag": (
        "conll",
        "a.conll",
        "EU NNP I-ORG\nrejects VBZ\n",
        "a.conll:2: expected 3 columns like line 1",
    ),
    "conll-no-tag-column": (
        "conll",
        "a.conll",
        "EU\nrejects\n",
        "a.conll:1: expected a token and tag column -1, found 1",
    ),
    "sentence-without-tokens": (
        "conllu",
        "a.conllu",
        CONLLU + "# sent_id = 3\n1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n",
        "a.conllu:22: expected a sentence with at least one token, found none",
    ),
    "empty-file": ("conllu", "a.conllu", "", "a.conllu: expected at least one sentence, found none"),
    "not-utf8": (
        "label_text",
        "a.txt",
        "pos good\nneg caf\u00e9 noir\n".encode("latin-1"),
        "a.txt:2: cannot decode as utf-8",
    ),
    "label-text-without-label": ("label_text", "a.txt", "pos good film\nbad\n", "a.txt:2: expected '<label> <text>'"),
    "label-text-label-without-text": (
        "label_text",
        "a.txt",
        "pos good film\nneg \t \n",
        "a.txt:2: expected a sentence with at least one token",
    ),
    "csv-missing-column": ("csv", "a.csv", "text,stars\ngood film,5\n", "a.csv:1: no column 'label'"),
    "conllu-empty-form": (
        "conllu",
        "a.conllu",
        CONLLU.replace("5\tthe\t", "5\t\t"),
        "a.conllu:9: expected a FORM (column 2) of one or more characters, found an empty one",
    ),
    "jsonl-empty-token": (
        "jsonl",
        "a.jsonl",
        '{"tokens": ["a", "film"], "tags": ["DET", "NOUN"]}\n{"tokens": [""], "tags": ["X"]}\n',
        "a.jsonl:2: expected tokens of one or more characters, found an empty one (token 1)",
    ),
    "jsonl-lone-surrogate": (
        "jsonl",
        "a.jsonl",
        '{"tokens": ["a", "\\ud800"], "tags": ["DET", "NOUN"]}\n',
        "a.jsonl:1: expected Unicode text, found a lone surrogate U+D800 in token 2",
    ),
    "jsonl-tokens-and-tags-differ": (
        "jsonl",
        "a.jsonl",
        '{"tokens": ["a", "film"], "tags": ["DET", "NOUN"]}\n{"tokens": ["a", "b"], "tags": ["X"]}\n',
        "a.jsonl:2: expected one tag per token, found 2 tokens and 1 tags",
    ),
}


@pytest.mark.parametrize(("format", "name", "content", "message"), DATA_ERRORS.values(), ids=DATA_ERRORS)
def test_a_malformed_data_file_is_one_line_naming_file_and_line(in_tmp, capsys, format, name, content, message):
    train = write(in_tmp / name, content)
    code, line = train_py(capsys, "--data.format", format, "--data.train_file", train)
    assert code == 1 and message in line, line
    assert not list(in_tmp.rglob("*.ckpt"))


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_label_not_in_training_names_the_split_file_and_the_label(in_tmp, capsys, split):
    train = write(in_tmp / "train.txt", LABEL_TEXT)
    other = write(in_tmp / f"{split}.txt", "pos a film\nneutral so so\n")
    files = ["--data.train_file", train, f"--data.{split}_file", other] + (
        ["--data.val_file", train] * (split == "test")
    )
    code, line = train_py(capsys, *files, config="text_classification.yaml")
    assert code == 1 and f"{split}.txt" in line and "['neutral']" in line, line
    assert "--model.classifier.unseen unknown" in line  # the remedy it names is one train.py takes:
    config = str(CONFIGS / "text_classification.yaml")
    cli = main(["fit", "--config", config, *QUIET, "--data.cache_dir", "cache", *files, "--model.classifier.unseen",
                "unknown", "--trainer.max_steps", "1"], CONFIGS)  # fmt: skip
    assert cli.model.vocabularies["classifier"].itos[-1] == "<unk>"


def test_a_training_split_of_one_class_is_one_line_naming_the_file_and_the_class(in_tmp, capsys):
    train = write(in_tmp / "train.txt", "pos a good film\npos great\npos fine\n")
    files = ["--data.train_file", train, "--data.val_file", train]
    code, line = train_py(capsys, *files, config="text_classification.yaml")
    assert code == 1, line
    assert "train.txt: the classifier head's column 'label' has one class in the training split ('pos')" in line


def test_a_class_that_only_the_held_out_validation_has_is_said_to_be_held_out(in_tmp, capsys):
    train = write(in_tmp / "train.txt", "pos a good film\nneg a dull film\n")  # one sentence held out: one class left
    code, line = train_py(capsys, "--data.train_file", train, config="text_classification.yaml")
    assert code == 1 and "has one class in the training split, what is left once validation was held out" in line


def test_a_training_file_too_small_to_hold_out_validation_is_one_line_naming_it(in_tmp, capsys):
    train = write(in_tmp / "one.txt", "pos a good film\n")
    code, line = train_py(capsys, "--data.train_file", train, config="text_classification.yaml")
    assert code == 1 and "one.txt: 1 training sentence(s), too few to hold out val_fraction=0.1" in line, line


def test_a_folder_given_as_a_data_file_is_one_line_naming_it(in_tmp, capsys):
    (in_tmp / "corpus").mkdir()
    code, line = train_py(capsys, "--data.format", "conllu", "--data.train_file", "corpus")
    assert code == 1 and "corpus is a folder; expected a file of the corpus's train split" in line, line


@pytest.mark.parametrize("option", ["train_file", "val_file", "pretrained_embeddings"])
def test_a_missing_file_is_one_line_naming_it(in_tmp, capsys, conllu_file, option):
    train = conllu_file.name
    args = ["--data.format", "conllu", "--data.train_file", train, "--data.val_file", train]
    args += [f"--data.{option}", "nowhere.txt"]
    code, line = train_py(capsys, *args)
    assert code == 1 and "not found: nowhere.txt" in line, line


@pytest.mark.slow
def test_a_data_error_reaches_the_terminal_as_one_line_without_traceback(tmp_path):
    write(tmp_path / "a.conllu", NINE_COLUMNS)
    command = [*TRAIN_PY, "fit", "--config", str(CONFIGS / "ud_upos.yaml"), *QUIET]
    command += ["--data.train_file", "a.conllu", "--data.cache_dir", "cache"]
    result = run(command, tmp_path, timeout=120)  # without SEQMODELS_DEBUG (the quiet fixture)
    assert result.returncode == 1
    assert error_line(result.stderr) == (
        "train.py: error: a.conllu:9: expected 10 TAB-separated columns, found 9 (--debug for the traceback)"
    )


def test_after_a_data_error_the_fixed_file_trains_and_nothing_was_half_written(in_tmp, capsys):
    train = write(in_tmp / "a.conllu", NINE_COLUMNS)
    args = ["--data.format", "conllu", "--data.train_file", train, "--data.val_file", train, *SMALL]
    for _ in range(2):  # the second attempt fails the same way: no broken entry was cached by the first
        code, line = train_py(capsys, *args, "--trainer.max_epochs", "1")
        assert code == 1 and "a.conllu:9:" in line
    assert not list(in_tmp.rglob("*.ckpt")) and not list(in_tmp.rglob("*.partial"))
    assert not [p for p in (in_tmp / "cache").rglob("*") if "incomplete" in p.name]
    write(in_tmp / "a.conllu", CONLLU)
    cli = main(["fit", "--config", str(CONFIGS / "tagger.yaml"), *QUIET, "--data.cache_dir", "cache", *args,
                "--trainer.max_epochs", "1"], CONFIGS)  # fmt: skip
    tags = ["ADV", "AUX", "DET", "NOUN", "PART", "PRON", "PROPN", "PUNCT", "VERB"]  # the CoNLL-U sample's UPOS
    assert cli.model.vocabularies["tagger"].itos == tags
    assert list(in_tmp.glob("logs/tagger/version_*/checkpoints/last.ckpt"))


# ----------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.batchsize", "3"], "unrecognized arguments: --data.batchsize"),
        (["--model.encoder.hiden_size", "3"], "\"model.encoder\": Unexpected keys: {'hiden_size'}"),
        (["--data.batch_size", "abc"], "\"data.batch_size\": Expected a <class 'int'>. Got value: abc"),
        (["--model.encoder.hidden_size", "abc"], "\"model.encoder\": Expected a <class 'int'>"),
        (["--config", "second.yaml"], "does not accept option 'data.batchsize'"),
        (["--config", "nowhere.yaml"], "nowhere.yaml"),
        (["--trainer.max_epoch", "3"], "unrecognized arguments: --trainer.max_epoch 3; did you mean --trainer.max_epochs?"),
    ],
    ids=["unknown-flag", "unknown-nested-key", "wrong-type", "wrong-nested-type", "unknown-yaml-key", "missing-config",
         "abbreviated-flag"],
)
def test_a_config_error_is_one_line_naming_the_key(in_tmp, capsys, args, message):
    write(in_tmp / "second.yaml", "data:\n  batchsize: 3\n")
    code, line = train_py(capsys, *args)
    assert code == 2 and message in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.val_fraction", "1.5"], "data.val_fraction: expected a share between 0 and 1 (exclusive), got 1.5"),
        (["--data.batch_size", "0"], "data.batch_size: expected at least 1, got 0"),
        (["--data.format", "conllu"], "data.train_file: expected a file to train on (format 'conllu' reads files)"),
        (["--data.format", "conllu", "--data.train_file", "a.conllu", "--data.tag_column", "pos"],
         "data.tag_column: tag_column for conllu must be one of"),
        (["--data.corpora", '{"ud": {"format": "conllu", "train_file": "a", "val_fraction": 2}}'],
         "data.corpora.ud.val_fraction: expected a share between 0 and 1 (exclusive), got 2"),
        (["--data.temperature", "0"], "data.temperature: expected a positive number, got 0.0"),
    ],
    ids=["val-fraction", "batch-size", "no-train-file", "conllu-column", "corpus-option", "temperature"],
)
def test_a_data_option_that_cannot_work_is_one_line_naming_its_key(in_tmp, capsys, args, message):
    """Checked as the data module is built from the parsed config, before any file is read."""
    code, line = train_py(capsys, *args)
    assert code == 1 and message in line, line


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_on_a_cpu_without_bf16_instructions_is_one_line_naming_the_setting(in_tmp, capsys, monkeypatch, precision):
    """Checked before the data is read: otherwise oneDNN fails deep in the LSTM, at the first equal-length batch."""
    monkeypatch.setattr(runs, "cpu_runs_bf16_lstm", lambda: False)
    code, line = train_py(capsys, "--trainer.accelerator", "cpu", "--trainer.precision", precision)
    assert code == 1, line
    assert f"trainer.precision: {precision} on the CPU needs bf16 instructions" in line and "use 32-true" in line


def test_the_bf16_check_tells_the_truth_about_this_cpu():
    """Where the check says no, a bf16 LSTM over sentences of one length (run unpacked, by oneDNN) fails; where it
    says yes, it runs."""
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(2, 3, 4), torch.tensor([3, 3]), batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if runs.cpu_runs_bf16_lstm():
            assert torch.isfinite(lstm(packed)[0].data.float()).all()
        else:
            with pytest.raises(RuntimeError, match="could not create a primitive descriptor"):
                lstm(packed)


# ------------------------------------------------------------------------------------------------ embeddings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("the 0.1 0.2 0.3\nfilm 0.1 0.2\n", "vectors.txt:2: expected a word and 3 numbers, found 3 fields"),
        ("the 0.1 0.2 0.3\nfilm 0.1 x 0.3\n", "vectors.txt:2: expected numbers after the word"),
        ("the 0.1 0.2 0.3\ncaf\u00e9 0.1 0.2 0.3\n".encode("latin-1"), "vectors.txt:2: cannot decode as utf-8"),
        ("", "vectors.txt: expected word vectors, found none"),
    ],
    ids=["ragged", "not-a-number", "not-utf8", "empty"],
)
def test_a_malformed_embedding_file_names_file_and_line(in_tmp, capsys, conllu_file, content, message):
    train = conllu_file.name
    vectors = write(in_tmp / "vectors.txt", content)
    args = ["--data.format", "conllu", "--data.train_file", train, "--data.val_file", train]
    args += ["--data.pretrained_embeddings", vectors]
    code, line = train_py(capsys, *args, "--model.encoder.embedding_dim", "3")
    assert code == 1 and message in line, line


def test_check_dimension_reads_one_vector_and_names_the_file(tmp_path):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("2 3\nthe 0.1 0.2 0.3\nfilm 0.1 0.2 0.3\n", encoding="utf-8")  # with a word2vec header
    check_dimension(str(vectors), 3)
    with pytest.raises(DataFormatError, match=r"vectors\.txt: the vectors have dimension 3, but .*embedding_dim is 64"):
        check_dimension(str(vectors), 64)
    check_dimension("glove-6b-50d", 50)  # known without loading the package


def test_an_embedding_dimension_other_than_the_configs_names_file_and_both(in_tmp, capsys, conllu_file):
    train = conllu_file.name
    vectors = write(in_tmp / "vectors.txt", "the 0.1 0.2 0.3\nfilm 0.1 0.2 0.3\n")
    args = ["--data.format", "conllu", "--data.train_file", train, "--data.val_file", train]
    args += ["--data.pretrained_embeddings", vectors]
    code, line = train_py(capsys, *args, "--model.encoder.embedding_dim", "64")
    assert code == 1, line
    assert "vectors.txt: the vectors have dimension 3, but model.encoder.embedding_dim is 64" in line, line


# ------------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A classifier-only checkpoint trained by train.py on the synthetic corpus, and broken ones made from it."""
    root = tmp_path_factory.mktemp("checkpoints")
    args = ["fit", "--config", str(CONFIGS / "classifier.yaml"), *QUIET, *SMALL, *SYNTHETIC]
    args += ["--data.cache_dir", str(root / "cache"), "--trainer.max_epochs", "1"]
    main(args + ["--trainer.logger.init_args.save_dir", str(root / "logs")], CONFIGS)
    classifier = next(root.glob("logs/classifier/version_0/checkpoints/last.ckpt"))
    data = classifier.read_bytes()
    files = {"classifier": classifier, "missing": root / "missing.ckpt"}
    files["truncated"] = root / "truncated.ckpt"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["corrupt"] = root / "corrupt.ckpt"
    files["corrupt"].write_bytes(data[:100] + bytes(len(data) - 200) + data[-100:])
    files["not-seqmodels"] = root / "not-seqmodels.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2, 2)}, "epoch": 3, "hyper_parameters": {"lr": 0.1}},
               files["not-seqmodels"])  # fmt: skip
    checkpoint = torch.load(classifier, weights_only=True)
    checkpoint["hyper_parameters"]["encoder"]["hidden_size"] = 16  # weights of one size, hyperparameters of another
    files["other-size"] = root / "other-size.ckpt"
    torch.save(checkpoint, files["other-size"])
    checkpoint = torch.load(classifier, weights_only=True)
    tokens = checkpoint["hyper_parameters"]["vocab"]["tokens"]
    tokens[2:] = reversed(tokens[2:])  # the same sizes, other words behind the ids
    files["other-data"] = root / "other-data.ckpt"
    torch.save(checkpoint, files["other-data"])
    return files


CHECKPOINT_ERRORS = {
    "classifier": "is for another model: it has no 'heads.tagger.",
    "missing": "checkpoint not found: ",
    "truncated": "cannot read {} as a PyTorch checkpoint (corrupt, truncated or not one)",
    "corrupt": "cannot read {} as a PyTorch checkpoint (corrupt, truncated or not one)",
    "not-seqmodels": "{} is not a seqmodels checkpoint (no vocabularies in its hyperparameters)",
}


@pytest.mark.parametrize("subcommand", ["test", "fit"])
@pytest.mark.parametrize("kind", CHECKPOINT_ERRORS)
def test_train_py_with_a_bad_checkpoint_is_one_line_naming_it(in_tmp, capsys, checkpoints, kind, subcommand):
    """--ckpt_path of another task (a classifier for the tagger config), truncated, corrupt, missing or not ours."""
    path = checkpoints[kind]
    args = [*SMALL, *SYNTHETIC, "--ckpt_path", str(path)]
    code, line = train_py(capsys, *args, subcommand=subcommand)
    assert code == 1 and str(path) in line and CHECKPOINT_ERRORS[kind].format(path) in line, line
    assert not list(in_tmp.rglob("*.ckpt"))


def test_train_py_with_a_checkpoint_of_other_data_says_which_vocabulary_differs(in_tmp, capsys, checkpoints):
    path = checkpoints["other-data"]
    args = [*SMALL, *SYNTHETIC, "--ckpt_path", str(path)]
    code, line = train_py(capsys, *args, config="classifier.yaml", subcommand="test")
    assert code == 1 and f"{path} was trained on other data: its 'tokens' vocabulary differs" in line, line


def test_train_py_with_a_checkpoint_of_other_encoder_sizes_names_the_sizes_of_its_fit(in_tmp, capsys, checkpoints):
    args = [*SMALL, *SYNTHETIC, "--model.encoder.hidden_size", "16", "--ckpt_path", str(checkpoints["classifier"])]
    code, line = train_py(capsys, *args, config="classifier.yaml", subcommand="test")
    assert code == 1 and "is for another model: 'encoder.lstm.weight_ih_l0' is (32, 8) there and (64, 8) here" in line
    assert line.endswith("; the fit that wrote it had --model.encoder.hidden_size 8 (--debug for the traceback)"), line


PREDICT_ERRORS = {
    **CHECKPOINT_ERRORS,
    "classifier": "CoNLL output writes tags, but this model has no tagger; use --format jsonl or conllu",
    "other-size": "{} is for another model: 'encoder.lstm.weight_ih_l0' is (32, 8) there and (64, 8) here",
}


@pytest.mark.parametrize("kind", PREDICT_ERRORS)
def test_seqmodels_predict_with_a_bad_checkpoint_is_one_line_naming_it(capsys, checkpoints, kind):
    path = checkpoints[kind]
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(path), "a good film", "--format", "conll"])
    message = str(exit_info.value.code)
    assert message.startswith("seqmodels-predict: error: ") and "\n" not in message
    assert PREDICT_ERRORS[kind].format(path) in message, message


def test_a_classifier_on_conll_input_is_offered_jsonl_alone(tmp_path, checkpoints):
    """CoNLL input gives CoNLL output by default, which a classifier cannot write; CoNLL-U from it is refused too."""
    source = tmp_path / "in.conll"
    source.write_text("the DT\nfilm NN\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(checkpoints["classifier"]), "--input", str(source)])
    assert str(exit_info.value.code).endswith("this model has no tagger; use --format jsonl")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.txt", "a good film\ncaf\u00e9 noir\n".encode("latin-1"), "latin1.txt:2: cannot decode as UTF-8"),
        ("nowhere.txt", None, "No such file or directory: '{}'"),
    ],
    ids=["not-utf8", "missing"],
)
def test_seqmodels_predict_with_bad_input_is_one_line_naming_it(tmp_path, capsys, checkpoints, name, content, message):
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(checkpoints["classifier"]), "--input", str(source)])
    error = str(exit_info.value.code)
    assert error.startswith("seqmodels-predict: error: ") and "\n" not in error
    assert message.format(source) in error, error


def test_stdin_that_is_not_utf8_is_one_line_naming_its_line(checkpoints, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("a good film\ncaf\u00e9 noir\n".encode("latin-1"))))
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(checkpoints["classifier"])])
    error = str(exit_info.value.code)
    assert error == "seqmodels-predict: error: <stdin>:2: cannot decode as UTF-8 (invalid continuation byte)", error


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("seqmodels.inference.predict_cli", ["model.ckpt", "a good film", "--tok", "simple"]),
        ("seqmodels.inference.export", ["model.ckpt", "--format", "onnx", "--out", "model.onnx"]),
        ("seqmodels.inference.server.cli", ["model.ckpt", "--max-batch", "8"]),
        ("seqmodels.shapes", ["--hidden", "4"]),
    ],
    ids=["predict", "export", "serve", "shapes"],
)
def test_the_seqmodels_commands_refuse_an_abbreviated_option(capsys, program, args):
    """As train.py does: ``--tok`` is not taken for ``--tokenizer``, which a later option could make ambiguous."""
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(program).main(args)
    assert exit_info.value.code == 2  # argparse's usage, then its one-line error
    assert f"error: unrecognized arguments: {args[-2]}" in capsys.readouterr().err.splitlines()[-1]


def test_seqmodels_predict_on_nothing_and_on_an_empty_argument(tmp_path, capsys, checkpoints):
    """Empty lines, emoji and a 10,000-token line are in test_predict.py; here: no input at all, and ''."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    predict.main([str(checkpoints["classifier"]), "--input", str(empty)])
    assert capsys.readouterr().out == ""
    predict.main([str(checkpoints["classifier"]), ""])
    assert capsys.readouterr().out == '{"tokens": []}\n'
