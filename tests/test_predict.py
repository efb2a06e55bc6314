"""seqmodels-predict: a checkpoint alone tags and classifies text, CoNLL-U and CoNLL, streamed and robust."""

import io
import json
import random
import re
import shutil
import subprocess
import sys
import types

import lightning as L
import pytest
import torch
from helpers import CONLLU, SIZES, VOCAB, WORDS, child_env, run
from test_docs import fenced
from torch.utils.data import DataLoader

from seqmodels.data.batching import PadCollator
from seqmodels.data.encoding import Numericalizer
from seqmodels.data.readers.conll import read_conllu
from seqmodels.data.fields import DEFAULT_FIELDS
from seqmodels.inference.loading import load_model
from seqmodels.inference.predict_cli import main
from seqmodels.inference.predictor import Predictor, simple_tokenize
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.runs import cpu_runs_bf16_lstm

BIO = ["B-X", "I-X", "O"]  # the CRF tagger's tags
PREDICT = [sys.executable, "-m", "seqmodels.inference.predict_cli"]  # seqmodels-predict in a subprocess


def fit_checkpoint(path, vocab: dict, data_options: dict | None = None, precision: str = "32-true", **heads) -> None:
    """One epoch on 16 random sentences of WORDS, saved as Lightning saves any checkpoint."""
    rng = random.Random(0)
    sentences = [[rng.choice(WORDS) for _ in range(rng.randint(1, 8))] for _ in range(16)]
    raw = {"tokens": sentences, "tagger": [[rng.choice(vocab["tags"]) for _ in s] for s in sentences]}
    raw["classifier"] = [rng.choice(VOCAB["labels"]) for _ in sentences]
    classes = {"tagger": vocab["tags"], "classifier": VOCAB["labels"]}  # a checkpoint of 0.3 names them tags, labels
    encoded = Numericalizer(vocab | classes, fields=DEFAULT_FIELDS)(raw)
    examples = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
    torch.manual_seed(0)
    model = SequenceModel(vocab, encoder=SIZES, data_options=data_options, **heads)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, DataLoader(examples, batch_size=8, collate_fn=PadCollator()))
    trainer.save_checkpoint(path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """A multitask model with characters and a case feature (VOCAB), and a CRF tagger (BIO tags)."""
    root = tmp_path_factory.mktemp("checkpoints")
    fit_checkpoint(root / "multitask.ckpt", VOCAB, tagger={}, classifier={})
    fit_checkpoint(root / "crf.ckpt", {"tokens": VOCAB["tokens"], "tags": BIO}, tagger={"crf": True})
    return {name: str(root / f"{name}.ckpt") for name in ("multitask", "crf")}


@pytest.mark.skipif(not cpu_runs_bf16_lstm(), reason="this CPU has no bf16 instructions (AVX-512 BF16, AMX)")
def test_bf16_trains_and_predicts_what_fp32_predicts_within_bf16s_rounding(tmp_path, capsys):
    fit_checkpoint(tmp_path / "bf16.ckpt", VOCAB, precision="bf16-mixed", tagger={}, classifier={})
    model = load_model(tmp_path / "bf16.ckpt")
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())  # mixed: fp32 weights
    sentences = [[random.Random(i).choice(WORDS) for _ in range(1 + i % 7)] for i in range(40)]
    fp32, bf16 = Predictor(model)(sentences), Predictor(model, precision="bf16")(sentences)
    for ours, theirs in zip(bf16, fp32, strict=True):
        assert ours.keys() == theirs.keys() and len(ours["tags"]) == len(theirs["tags"])
        assert ours["label_probs"] == pytest.approx(theirs["label_probs"], abs=0.02)
        assert ours["tag_probs"] == pytest.approx(theirs["tag_probs"], abs=0.05)  # of tags that may differ
    main([str(tmp_path / "bf16.ckpt"), "--precision", "bf16", "the film was great"])
    assert records(capsys.readouterr().out)[0]["tokens"] == ["the", "film", "was", "great"]


def test_bf16_prediction_where_it_cannot_run_is_one_line(checkpoints, monkeypatch):
    monkeypatch.setattr("seqmodels.inference.predictor.cpu_runs_bf16_lstm", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        main([checkpoints["multitask"], "--precision", "bf16", "a film"])
    assert stopped.value.code == ("seqmodels-predict: error: precision bf16 on the CPU needs bf16 instructions "
                                  "(AVX-512 BF16 or AMX) for the LSTM, and this CPU has none; use 32")  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        main([checkpoints["multitask"], "--precision", "bf16", "--backend", "onnx", "a film"])
    assert "--precision bf16 needs --backend torch" in stopped.value.code


def records(text: str) -> list[dict]:
    """The JSON lines of seqmodels-predict's output."""
    return [json.loads(line) for line in text.splitlines()]


def test_jsonl_from_arguments_is_what_predict_step_gives(checkpoints, capsys):
    main([checkpoints["multitask"], "The film was GREAT .", "i do n't like it"])
    first, second = records(capsys.readouterr().out)
    assert first["tokens"] == ["The", "film", "was", "GREAT", "."]  # printed as given, looked up lower-cased
    model = load_model(checkpoints["multitask"])
    encoded = Numericalizer(model.hparams.vocab)({"tokens": [first["tokens"], second["tokens"]]})
    batch = PadCollator()([dict(zip(encoded, values)) for values in zip(*encoded.values())])
    with torch.no_grad():
        expected = model.predict_step(batch, 0)
    for record, reference in zip((first, second), expected):
        assert record["tags"] == reference["tags"] and record["label"] == reference["label"]
        assert record["label_probs"] == pytest.approx(reference["label_probs"], abs=1e-5)
        assert len(record["tag_probs"]) == len(record["tokens"]) and all(0 < p <= 1 for p in record["tag_probs"])


def test_a_crf_tagger_gives_its_viterbi_path(checkpoints, capsys):
    main([checkpoints["crf"], "the film was dull ."])
    (record,) = records(capsys.readouterr().out)
    assert record["crf_path"] is True and "tag_probs" not in record and "label" not in record
    assert len(record["tags"]) == 5 and set(record["tags"]) <= set(BIO)


def test_conllu_is_written_back_with_upos_filled_and_the_label_as_a_comment(checkpoints, conllu_file, tmp_path, capsys):
    output = tmp_path / "out.conllu"
    main([checkpoints["multitask"], "--input", str(conllu_file), "--input-format", "conllu", "--output", str(output)])
    main([checkpoints["multitask"], "--input", str(conllu_file), "--input-format", "conllu", "--format", "jsonl"])
    predicted = records(capsys.readouterr().out)
    assert [r["tokens"] for r in predicted] == [["I", "do", "n't", "like", "the", "New York", "film", "."],
                                                ["It", "runs", "fast", "."]]  # fmt: skip

    written, original = output.read_text(encoding="utf-8").splitlines(), CONLLU.splitlines()
    labels = {i: line for i, line in enumerate(written) if line.startswith("# label = ")}
    assert labels == {2: f"# label = {predicted[0]['label']}", 16: f"# label = {predicted[1]['label']}"}  # after the
    written = [line for line in written if line not in labels.values()]  # sentence's own comments, before its words
    assert len(written) == len(original)
    tags = iter(tag for record in predicted for tag in record["tags"])
    for line, before in zip(written, original):
        fields, before_fields = line.split("\t"), before.split("\t")
        if before_fields[0].isdigit():  # a word: only UPOS changes
            assert fields[:3] + fields[4:] == before_fields[:3] + before_fields[4:] and fields[3] == next(tags)
        else:  # comments, the 2-3 multiword token, the 4.1 empty node, blank lines
            assert line == before


def test_text_gives_conllu_that_trains_a_model_with_the_predicted_tags(checkpoints, tmp_path, capsys):
    """Self-training's silver file: read back by the training reader, the tokens and tags are the predictions;
    a line without tokens gives no block (CoNLL-U has no empty sentence)."""
    source, output = tmp_path / "in.txt", tmp_path / "out.conllu"
    source.write_text("the film was dull .\n\nIt runs fast\n", encoding="utf-8")
    main([checkpoints["multitask"], "--input", str(source), "--output", str(output)])
    main([checkpoints["multitask"], "--input", str(source)])
    predicted = [record for record in records(capsys.readouterr().out) if record["tokens"]]
    options = types.SimpleNamespace(tag_column="upos", encoding="utf-8")
    read = [example for _, example in read_conllu(str(output), options)]
    assert [(r["tokens"], r["tags"]) for r in read] == [(r["tokens"], r["tags"]) for r in predicted]
    assert [r["tokens"] for r in read] == [["the", "film", "was", "dull", "."], ["It", "runs", "fast"]]
    assert {r["xpos"][0] for r in read} == {"_"}
    label = f"# label = {predicted[0]['label']}"  # the classifier's label, as for CoNLL-U input
    first_word = "\t".join(["1", "the", "_", predicted[0]["tags"][0], *"______"])
    first_block = ["# sent_id = 1", "# text = the film was dull .", label, first_word]
    assert output.read_text(encoding="utf-8").splitlines()[:4] == first_block
    assert "# sent_id = 3" in output.read_text(encoding="utf-8").splitlines()  # its line's number


def test_a_classifier_alone_writes_conllu_with_its_labels_as_comments(tmp_path, capsys):
    vocab = {key: VOCAB[key] for key in ("tokens", "tags", "labels")}  # (the helper draws tags it does not use)
    fit_checkpoint(tmp_path / "classifier.ckpt", vocab, classifier={})
    main([str(tmp_path / "classifier.ckpt"), "--format", "conllu", "the film", "was\ndull"])
    labels = [record["label"] for record in Predictor(load_model(tmp_path / "classifier.ckpt"))([["the", "film"],
                                                                                                ["was", "dull"]])]
    assert capsys.readouterr().out.split("\n\n") == [
        f"# sent_id = 1\n# text = the film\n# label = {labels[0]}\n1\tthe" + "\t_" * 8 + "\n2\tfilm" + "\t_" * 8,
        f"# sent_id = 2\n# text = was dull\n# label = {labels[1]}\n1\twas" + "\t_" * 8 + "\n2\tdull" + "\t_" * 8,
        "",
    ]  # a line break inside an argument is a space in # text


def test_conll_gets_a_last_column(checkpoints, tmp_path, capsys):
    source = tmp_path / "in.conll"
    source.write_text("-DOCSTART- -X- -X- O\n\nthe DT B-NP O\nfilm NN I-NP O\n", encoding="utf-8")
    main([checkpoints["crf"], "--input", str(source), "--input-format", "conll"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["-DOCSTART- -X- -X- O", ""]
    assert [line.rsplit(" ", 1)[0] for line in lines[2:4]] == ["the DT B-NP O", "film NN I-NP O"]
    assert all(line.rsplit(" ", 1)[1] in BIO for line in lines[2:4]) and lines[4:] == [""]


def test_empty_lines_and_unusual_unicode(checkpoints, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("the film\n\n😀 ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 e\u0301 \u200b\n   \n", encoding="utf-8")
    main([checkpoints["multitask"], "--input", str(source)])
    out = records(capsys.readouterr().out)
    unusual = ["😀", "☃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "e\u0301", "\u200b"]  # emoji, math letters, a combining accent, a zero-width space
    assert [r["tokens"] for r in out] == [["the", "film"], [], unusual, []]
    assert out[1] == {"tokens": []} and len(out[2]["tags"]) == 5 and "label" in out[2]


@pytest.mark.parametrize("data", [b"the cat\rsat down\r\nhello world\n", b"the cat\rsat down\rhello world"])
def test_carriage_returns_end_lines_in_a_file_and_on_stdin_alike(checkpoints, tmp_path, capsys, monkeypatch, data):
    """Universal newlines: "\r\n", "\r" (a CR-only file) and "\n" each end a line, from a file as from stdin."""
    source = tmp_path / "in.txt"
    source.write_bytes(data)
    main([checkpoints["multitask"], "--input", str(source)])
    from_file = [r["tokens"] for r in records(capsys.readouterr().out)]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    main([checkpoints["multitask"]])
    assert [r["tokens"] for r in records(capsys.readouterr().out)] == from_file
    assert from_file == [["the", "cat"], ["sat", "down"], ["hello", "world"]]


def test_a_long_sentence_is_predicted_in_chunks_with_a_warning(checkpoints, capsys):
    main([checkpoints["multitask"], " ".join(["the film"] * 5000)])
    captured = capsys.readouterr()
    (record,) = records(captured.out)
    assert len(record["tokens"]) == len(record["tags"]) == 10_000
    assert "argument:1: 10000 tokens > --max-tokens 512; predicted as 20 separate chunks" in captured.err

    # The chunks' predictions: tags concatenated, label probabilities averaged by chunk length.
    predictor = Predictor(load_model(checkpoints["multitask"]), batch_size=2, max_tokens=4)
    tokens = "the film was great . i do n't like it".split()
    (whole,) = predictor([tokens])
    parts = Predictor(predictor.model)([tokens[:4], tokens[4:8], tokens[8:]])
    assert whole["tags"] == [tag for part in parts for tag in part["tags"]]
    average = {k: sum(n * p["label_probs"][k] for n, p in zip((4, 4, 2), parts)) / 10 for k in whole["label_probs"]}
    assert whole["label_probs"] == pytest.approx(average, abs=1e-5)


def test_batches_are_formed_by_length_and_the_records_come_back_in_input_order(checkpoints):
    predictor = Predictor(load_model(checkpoints["multitask"]), batch_size=4)
    rng = random.Random(0)
    sentences = [rng.choices(WORDS, k=rng.randint(1, 30)) for _ in range(23)]
    batches = []
    decode = predictor._decode
    predictor._decode = lambda chunks: batches.append([len(c) for c in chunks]) or decode(chunks)
    together = predictor(sentences)
    lengths = [n for batch in batches for n in batch]
    assert lengths == sorted(map(len, sentences), reverse=True) and max(map(len, batches)) == 4
    alone = [record for sentence in sentences for record in Predictor(predictor.model)([sentence])]
    assert [len(record["tags"]) for record in together] == list(map(len, sentences))
    for a, b in zip(together, alone, strict=True):  # the same record, up to float rounding in other batches
        assert a["tags"] == b["tags"] and a["label"] == b["label"]
        assert a["label_probs"] == pytest.approx(b["label_probs"], abs=1e-5)
        assert all(x == pytest.approx(y, abs=1e-5) for x, y in zip(a["tag_probs"], b["tag_probs"]))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("I don't like the film.", "I do n't like the film ."),
        ("It's a well-known U.S. film, isn't it?", "It 's a well-known U.S. film , is n't it ?"),
        ("We can’t (really) pay $3.50 at 5 o'clock!", "We ca n't ( really ) pay $ 3.50 at 5 o'clock !"),
        ('the actors\' "best" 😀', 'the actors \' " best " 😀'),
        ("Mr. Smith met Dr. Jones of Acme Inc. in St. Louis.", "Mr. Smith met Dr. Jones of Acme Inc. in St. Louis ."),
        ("Stop. MR. Co.op co. Mrs.", "Stop . MR . Co.op co . Mrs."),  # the titles as written, nothing else
        ("Un cafe\u0301, s'il vous pla\u0131\u0302t.", "Un cafe\u0301 , s'il vous pla\u0131\u0302t ."),  # NFD accents
        ("नमस्ते दुनिया!", "नमस्ते दुनिया !"),  # vowel signs and virama inside a word
    ],
)
def test_simple_tokenizer_splits_like_the_ptb(text, tokens):
    assert simple_tokenize(text) == tokens.split(" ")


def test_bad_checkpoints_end_in_one_line(tmp_path):
    (tmp_path / "garbage.ckpt").write_text("not a checkpoint")
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "other.ckpt")
    expected = {
        "missing.ckpt": "checkpoint not found",
        "garbage.ckpt": "cannot read",
        "other.ckpt": "is not a seqmodels checkpoint",
    }
    for name, message in expected.items():
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / name), "some text"])
        error = str(exit_info.value.code)
        assert error.startswith("seqmodels-predict: error: ") and message in error and "\n" not in error


@pytest.mark.slow
def test_stdin_with_a_checkpoint_copied_alone_into_another_directory(checkpoints, tmp_path):
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(checkpoints["multitask"], alone / "model.ckpt")
    stdin = "I don't like it.\n\nGreat!\n"
    result = run([*PREDICT, "model.ckpt", "--tokenizer", "simple", "--batch-size", "1"], alone, input=stdin)
    assert result.returncode == 0, result.stderr
    out = records(result.stdout)
    assert [r["tokens"] for r in out] == [["I", "do", "n't", "like", "it", "."], [], ["Great", "!"]]
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


@pytest.mark.slow
def test_output_to_dev_stdout_appends_to_what_the_shell_redirected_it_to(checkpoints, tmp_path):
    """/dev/stdout redirected to a file is that file: the records follow what it held (>>), and the warnings that
    share it (2>&1) are not overwritten."""
    (tmp_path / "r.txt").write_text("header\n")
    predict = " ".join([*PREDICT, checkpoints["multitask"], "--output", "/dev/stdout", "'zzyzx qwxv'"])
    result = subprocess.run(f"{predict} >> r.txt 2>&1", shell=True, cwd=tmp_path, env=child_env(), timeout=300,
                            check=False)  # fmt: skip
    assert result.returncode == 0
    lines = (tmp_path / "r.txt").read_text().splitlines()
    assert lines[0] == "header" and any(line.startswith("seqmodels-predict: warning: ") for line in lines)
    assert [json.loads(line)["tokens"] for line in lines if line.startswith("{")] == [["zzyzx", "qwxv"]]


@pytest.mark.slow
def test_a_bom_on_stdin_is_not_part_of_the_first_token(checkpoints, tmp_path):
    """As in an --input file: a BOM (Windows editors write one) marks the encoding, and is no character of the text."""
    stdin = b"\xef\xbb\xbfgood film\n"
    result = subprocess.run([*PREDICT, checkpoints["multitask"]], cwd=tmp_path, env=child_env(), input=stdin,
                            capture_output=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["tokens"] for r in records(result.stdout.decode("utf-8"))] == [["good", "film"]]


@pytest.mark.slow
def test_a_missing_checkpoint_fails_with_one_line_and_no_traceback(tmp_path):
    result = run([*PREDICT, "missing.ckpt", "text"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["seqmodels-predict: error: checkpoint not found: missing.ckpt"]


# ---------------------------------------------------------------------- formats, tag columns, the documented commands

BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_commands(program: str) -> list[str]:
    """README.md's and docs/*.md's ``program ...`` lines inside fenced bash blocks, as written (comments and
    redirections too)."""
    return [line for _, block in fenced(BASH_BLOCK) for line in block.splitlines() if line.startswith(program + " ")]


@pytest.mark.slow
def test_the_readmes_predict_commands_as_written(checkpoints, tmp_path):
    """Each ``seqmodels-predict`` line of README.md and docs/, run by the shell in a folder with the files it names."""
    commands = readme_commands("seqmodels-predict")
    assert len(commands) >= 4
    folder = tmp_path / "logs" / "default" / "version_0" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(checkpoints["multitask"], folder / "last.ckpt")
    teacher = tmp_path / "logs" / "teacher" / "version_0" / "checkpoints"  # docs/training.md's self-training
    teacher.mkdir(parents=True)
    shutil.copy(checkpoints["multitask"], teacher / "BEST.ckpt")
    (tmp_path / "sentences.txt").write_text("I don't like it.\nThe film was great!\n", encoding="utf-8")
    (tmp_path / "raw.txt").write_text("the film was dull .\nIt runs fast\n", encoding="utf-8")
    (tmp_path / "dev.conllu").write_text(CONLLU, encoding="utf-8")
    for command in commands:
        for produced in ("predictions.jsonl", "dev.pred.conllu"):
            (tmp_path / produced).unlink(missing_ok=True)
        command = command.replace(" CKPT ", f" {folder / 'last.ckpt'} ")
        result = run(["bash", "-c", command], tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        if "--output silver.conllu" in command:  # text in, CoNLL-U out: a block of ID, FORM and UPOS per line
            blocks = (tmp_path / "silver.conllu").read_text(encoding="utf-8").split("\n\n")
            words = [[line.split("\t") for line in block.splitlines() if not line.startswith("#")] for block in blocks]
            forms = [[fields[1] for fields in block] for block in words if block]
            assert forms == [["the", "film", "was", "dull", "."], ["It", "runs", "fast"]]
            comments = [[line for line in block.splitlines() if line.startswith("#")] for block in blocks if block]
            assert [block[:2] for block in comments] == [["# sent_id = 1", "# text = the film was dull ."],
                                                         ["# sent_id = 2", "# text = It runs fast"]]  # fmt: skip
            assert all(fields[3] in VOCAB["tags"] for block in words for fields in block)
            continue
        if "--output dev.pred.conllu" in command:  # CoNLL-U in, CoNLL-U out: only UPOS differs, and a label comment
            written = (tmp_path / "dev.pred.conllu").read_text(encoding="utf-8").splitlines()
            labels = [line for line in written if line.startswith("# label = ")]
            assert len(labels) == 2 and all(label[10:] in VOCAB["labels"] for label in labels)
            written = [line for line in written if line not in labels]
            for line, before in zip(written, CONLLU.splitlines(), strict=True):
                fields, before_fields = line.split("\t"), before.split("\t")
                assert fields[:3] + fields[4:] == before_fields[:3] + before_fields[4:]
                assert fields[3] in VOCAB["tags"] if before_fields[0].isdigit() else line == before
            continue
        out = (tmp_path / "predictions.jsonl").read_text() if "> predictions.jsonl" in command else result.stdout
        predicted = records(out)
        assert predicted and all(len(r["tags"]) == len(r["tokens"]) > 0 and "label" in r for r in predicted), command
        if "sentences.txt" in command:
            assert [r["tokens"] for r in predicted] == [["I", "do", "n't", "like", "it", "."], ["The", "film", "was",
                                                                                              "great", "!"]]


def test_a_label_comment_the_input_had_is_replaced(checkpoints, conllu_file, capsys):
    conllu_file.write_text(CONLLU.replace("# text = It runs fast.", "# label = gold\n# text = It runs fast."), "utf-8")
    main([checkpoints["multitask"], "--input", str(conllu_file)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[15:17] == ["# text = It runs fast.", lines[16]] and lines[16].startswith("# label = ")
    assert "# label = gold" not in lines and sum(line.startswith("# label = ") for line in lines) == 2


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--input", "in.conllu"], CONLLU.replace("2\truns\t", "2\t\t"),
         "in.conllu:17: expected a FORM (column 2) of one or more characters, found an empty one"),
        (["--input", "in.conllu"], "1\t\t_\t_\t_\t_\t_\t_\t_\t_\n",  # the batch's only word: no character at all
         "in.conllu:1: expected a FORM (column 2) of one or more characters, found an empty one"),
        (["the film", "great \ud800 !"], None,  # from Python (a command line cannot give U+D800)
         "argument:2: expected Unicode text, found a lone surrogate U+D800 in token 2"),
        (["great \udcff"], None,  # the byte 0xFF in a command line, as Python's surrogateescape gives it
         "argument:1: expected Unicode text, found a byte 0xFF that is not UTF-8 in token 2"),
        (["\udced\udca0\udc80"], None,  # b"\xed\xa0\x80": UTF-8's form of U+D800, which UTF-8 forbids
         "argument:1: expected Unicode text, found a byte 0xED that is not UTF-8 in token 1"),
    ],
    ids=["empty-form", "only-an-empty-form", "lone-surrogate", "byte-ff", "encoded-surrogate"],
)  # fmt: skip
def test_a_token_the_model_cannot_read_is_one_line_naming_where(checkpoints, tmp_path, monkeypatch, capsys, args,
                                                                 content, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "in.conllu").write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main([checkpoints["multitask"], *args, "--output", "out.jsonl"])
    assert str(exit_info.value.code) == f"seqmodels-predict: error: {message}"
    assert not list(tmp_path.glob("out*"))  # nothing written


def test_options_may_come_before_the_text(checkpoints, capsys):
    main([checkpoints["multitask"], "--tokenizer", "simple", "I don't like it.", "--batch-size", "1", "Great!"])
    assert [r["tokens"] for r in records(capsys.readouterr().out)] == [["I", "do", "n't", "like", "it", "."],
                                                                       ["Great", "!"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "in.conllu", "--output", "out.jsonl", "--format", "conllu"], "--format conllu would write"),
        (["--input", "in.data"], "cannot tell the format of in.data from its suffix; give --input-format"),
        (["--input", "in.conllu", "--output", "out.conll"], "cannot write conll from conllu input"),
    ],
    ids=["format-against-suffix", "unknown-suffix", "conllu-to-conll"],
)
def test_output_that_cannot_be_right_is_refused_in_one_line(checkpoints, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    for name in ("in.txt", "in.conllu", "in.data"):
        (tmp_path / name).write_text(CONLLU if name.endswith("conllu") else "the film\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main([checkpoints["multitask"], *args])
    error = str(exit_info.value.code) if exit_info.value.code != 2 else capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "\n" not in error, error
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]  # nothing written


XPOS_AND_NE = {"xpos": ["DT", "NN", "NNP", "PRP", "RB", "VB", "VBP", "VBZ", "."], "misc:NE": ["B-PER", "O"]}


@pytest.mark.parametrize("tag_column", XPOS_AND_NE)
def test_conllu_output_fills_the_column_the_tags_came_from_and_no_other(tmp_path, conllu_file, capsys, tag_column):
    """An XPOS model writes XPOS (UPOS keeps the gold tags); a MISC-attribute model sets only that attribute."""
    vocab = {"tokens": VOCAB["tokens"], "tags": XPOS_AND_NE[tag_column]}
    options = {"max_word_length": 20, "lowercase": False, "tags": {"format": "conllu", "column": tag_column}}
    fit_checkpoint(tmp_path / "model.ckpt", vocab, tagger={}, data_options=options)
    output = tmp_path / "out.conllu"
    main([str(tmp_path / "model.ckpt"), "--input", str(conllu_file), "--output", str(output)])
    main([str(tmp_path / "model.ckpt"), "--input", str(conllu_file), "--format", "jsonl"])
    tags = iter(tag for record in records(capsys.readouterr().out) for tag in record["tags"])
    for line, before in zip(output.read_text(encoding="utf-8").splitlines(), CONLLU.splitlines(), strict=True):
        fields, before_fields = line.split("\t"), before.split("\t")
        if not before_fields[0].isdigit():
            assert line == before
        elif tag_column == "xpos":
            assert fields[:4] + fields[5:] == before_fields[:4] + before_fields[5:] and fields[4] == next(tags)
        else:  # MISC keeps its other attributes, in order, and gains NE=tag
            assert fields[:9] == before_fields[:9]
            kept = [item for item in before_fields[9].split("|") if item != "_"]
            assert fields[9].split("|") == [*kept, f"NE={next(tags)}"]


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("The Film Was Great .\nI Do n't Like It .", "likely cause: case"),
        ("the film, was great.\ni do n't like it.", "likely cause: the tokenizer"),
        ("la película fue genial\nno me gusta", "likely cause: another language or domain"),
    ],
    ids=["case", "tokenizer", "language"],
)
def test_mostly_unknown_input_warns_once_naming_the_likely_cause(checkpoints, tmp_path, capsys, text, cause):
    source = tmp_path / "in.txt"
    source.write_text(text + "\n", encoding="utf-8")
    main([checkpoints["crf"], "--input", str(source), "--batch-size", "1"])  # lower-case words, no case feature
    warnings = [line for line in capsys.readouterr().err.splitlines() if "unknown to the model" in line]
    assert len(warnings) == 1 and cause in warnings[0], warnings
    main([checkpoints["crf"], "the film was great .", "i do n't like it ."])
    assert "unknown to the model" not in capsys.readouterr().err
