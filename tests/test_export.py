"""seqmodels-export: TorchScript and ONNX graphs give the PyTorch model's scores on variable-length padded batches."""

import itertools
import json
import os
import re
import shutil
from pathlib import Path

import lightning
import pytest
import torch
from helpers import DIRECTIONS, VOCAB

from seqmodels.inference import export
from seqmodels.inference.export import export_onnx, export_torchscript, main, random_batch
from seqmodels.inference.onnx_runtime import METADATA, OnnxPredictor
from seqmodels.models.masked_lstm import ExportError
from seqmodels.models.sequence_model import SequenceModel

GRID = list(itertools.product(DIRECTIONS, (1, 2), (False, True)))  # directions, num_layers, chars


def assert_parity(model: SequenceModel, run) -> None:
    """``run(batch)`` (the exported graph) gives the model's scores, head by head, on batches of other shapes."""
    for seed, (batch_size, max_len) in enumerate([(1, 1), (5, 7), (9, 13)]):
        batch = random_batch(model, batch_size, max_len, seed)
        with torch.no_grad():
            expected = model(**batch)
        outputs = run(batch)
        assert len(outputs) == len(expected)
        for name, output in zip(expected, outputs):
            torch.testing.assert_close(torch.as_tensor(output), expected[name], atol=1e-5, rtol=0, msg=name)


def run_torchscript(path: Path):
    """The TorchScript module at ``path`` as a function of a batch."""
    module = torch.jit.load(str(path))
    return lambda batch: module(**batch)


def run_onnx(path: Path):
    """An ONNX Runtime session (one thread) of the graph at ``path`` as a function of a batch."""
    onnxruntime = pytest.importorskip("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options)
    return lambda batch: session.run(None, {name: tensor.numpy() for name, tensor in batch.items()})


@pytest.mark.parametrize(("directions", "num_layers", "chars"), GRID)
def test_torchscript_parity(tmp_path, make_model, directions, num_layers, chars):
    model = make_model(chars, encoder={**DIRECTIONS[directions], "num_layers": num_layers}).eval()
    export_torchscript(model, tmp_path / "model.pt")
    assert_parity(model, run_torchscript(tmp_path / "model.pt"))


@pytest.mark.parametrize(("directions", "num_layers", "chars"), GRID)
def test_onnx_parity(tmp_path, make_model, directions, num_layers, chars):
    pytest.importorskip("onnxruntime")
    model = make_model(chars, encoder={**DIRECTIONS[directions], "num_layers": num_layers}).eval()
    export_onnx(model, tmp_path / "model.onnx")
    assert_parity(model, run_onnx(tmp_path / "model.onnx"))


@pytest.mark.parametrize("export_format", ["torchscript", "onnx"])
def test_a_character_lstm_exports_with_parity(tmp_path, make_model, export_format):
    model = make_model(chars=True, encoder={"num_layers": 2, "char_encoder": "lstm"}).eval()
    if export_format == "onnx":
        pytest.importorskip("onnxruntime")
        export_onnx(model, tmp_path / "model.onnx")
        assert_parity(model, run_onnx(tmp_path / "model.onnx"))
    else:
        export_torchscript(model, tmp_path / "model.pt")
        assert_parity(model, run_torchscript(tmp_path / "model.pt"))


def test_case_feature_crf_emissions_and_metadata(tmp_path, make_model):
    pytest.importorskip("onnxruntime")
    model = make_model(chars=True, cases=True, encoder={"num_layers": 2}, tagger={"crf": True}, classifier={}).eval()
    wrapper = export_onnx(model, tmp_path / "model.onnx")
    assert wrapper.input_names == ["token_ids", "lengths", "char_ids", "case_ids"]
    assert_parity(model, run_onnx(tmp_path / "model.onnx"))  # the tagger's output is the CRF's emissions

    import onnx

    properties = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    metadata = json.loads(properties[METADATA])
    assert metadata["outputs"] == ["tagger", "classifier"] and metadata["vocab"] == VOCAB


def test_proj_size_exports_to_torchscript_only(tmp_path, make_model):
    model = make_model(encoder={"bidirectional": True, "num_layers": 2, "proj_size": 3}).eval()
    export_torchscript(model, tmp_path / "model.pt")
    assert_parity(model, run_torchscript(tmp_path / "model.pt"))
    with pytest.raises(ExportError, match="proj_size"):
        export_onnx(model, tmp_path / "model.onnx")


def test_the_command_line_from_a_checkpoint_copied_alone(tmp_path, monkeypatch, capsys, make_model):
    model = make_model(chars=True, encoder={"num_layers": 2, "bidirectional": True}).eval()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save(checkpoint | {"pytorch-lightning_version": lightning.__version__}, tmp_path / "saved.ckpt")
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(tmp_path / "saved.ckpt", alone / "model.ckpt")
    monkeypatch.chdir(alone)

    main(["model.ckpt", "--format", "torchscript"])
    assert "model.pt: inputs token_ids, lengths, char_ids -> outputs tagger, classifier" in capsys.readouterr().out
    assert_parity(model, run_torchscript(alone / "model.pt"))
    if pytest.importorskip("onnxruntime"):
        main(["model.ckpt", "--format", "onnx", "--output", "out/model.onnx"])
        assert_parity(model, run_onnx(alone / "out" / "model.onnx"))

    with pytest.raises(SystemExit, match=r"^seqmodels-export: error: checkpoint not found: missing.ckpt$"):
        main(["missing.ckpt", "--format", "onnx"])
    os.mkfifo("pipe.pt")  # an export reads its file back to check it: no pipe, no folder
    with pytest.raises(SystemExit, match=r"^seqmodels-export: error: pipe.pt is a stream; an export is written to a "):
        main(["model.ckpt", "--format", "torchscript", "--output", "pipe.pt"])
    with pytest.raises(SystemExit, match=r"^seqmodels-export: error: out is a folder; expected a file$"):
        main(["model.ckpt", "--format", "torchscript", "--output", "out"])


def test_an_encoder_holding_a_gru_fails_in_one_line_and_writes_nothing(tmp_path, make_model):
    """A template user's swap of nn.LSTM for nn.GRU: ONNX would take the GRU's 3 gates as an LSTM's 4 and fail
    only when run; the exporter names the layer instead."""
    model = make_model(encoder={"bidirectional": True}).eval()
    lstm = model.encoder.lstm
    model.encoder.lstm = torch.nn.GRU(lstm.input_size, lstm.hidden_size, batch_first=True, bidirectional=True)
    for exporter, name in ((export_onnx, "model.onnx"), (export_torchscript, "model.pt")):
        with pytest.raises(ExportError, match="recurrent layer is GRU; export knows batch-first nn.LSTM only"):
            exporter(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_differs_from_the_model_is_refused_and_not_written(tmp_path, monkeypatch, capsys, make_model):
    model = make_model(encoder={"num_layers": 2, "bidirectional": True}).eval()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save(checkpoint | {"pytorch-lightning_version": lightning.__version__}, tmp_path / "model.ckpt")
    original = export.masked_lstm
    monkeypatch.setattr(export, "masked_lstm", lambda lstm, x, lengths: [t * 1.01 for t in original(lstm, x, lengths)])
    for format in ("torchscript", "onnx"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / "model.ckpt"), "--format", format])
        error = str(exit_info.value.code)
        assert error.startswith("seqmodels-export: error: the exported graph's tagger output differs from the model's")
        assert "nothing written" in error and "\n" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


@pytest.mark.parametrize(
    ("sentences", "message"),
    [
        ([["film"], [""]], "sentence 2: expected tokens of one or more characters, found an empty one (token 1)"),
        ([["the", "film\ud800"]], "sentence 1: expected Unicode text, found a lone surrogate U+D800 in token 2"),
    ],
    ids=["empty-token", "lone-surrogate"],
)
def test_the_onnx_runtime_refuses_a_token_the_model_cannot_read(tmp_path, make_model, sentences, message):
    """What the server and seqmodels-predict refuse, OnnxPredictor refuses too (a word without characters would reach
    the character CNN as an empty (B, T, 0) batch); then it predicts on."""
    pytest.importorskip("onnxruntime")
    export_onnx(make_model(chars=True).eval(), tmp_path / "model.onnx")
    predictor = OnnxPredictor(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        predictor(sentences)
    assert len(predictor([["the", "film"]])[0]["tags"]) == 2
