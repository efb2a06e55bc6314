"""seqmodels-export: TorchScript and ONNX graphs give the PyTorch model's scores on variable-length padded batches."""

import itertools
import json
import shutil
from pathlib import Path

import lightning
import pytest
import torch

from seqmodels.data.vocab import CASES, PAD, UNK
from seqmodels.export import export_onnx, export_torchscript, main
from seqmodels.models.masked_lstm import ExportError, MaskedLSTM
from seqmodels.runtime import METADATA
from seqmodels.models.sequence_model import SequenceModel

VOCAB = {
    "tokens": [PAD, UNK, *(f"w{i}" for i in range(20))],
    "chars": [PAD, UNK, *"abcdefgh"],
    "cases": CASES,
    "tags": ["B-X", "I-X", "O"],
    "labels": ["negative", "positive"],
}
SIZES = {"embedding_dim": 6, "hidden_size": 5, "char_embedding_dim": 3, "char_channels": 4, "case_embedding_dim": 2}
GRID = list(itertools.product((False, True), (1, 2), (False, True)))  # bidirectional, num_layers, chars


def make_model(chars: bool = False, cases: bool = False, tagger: dict | None = None, **encoder) -> SequenceModel:
    """A multitask model with random weights; ``chars`` / ``cases`` add the character CNN / case feature."""
    torch.manual_seed(0)
    vocab = {name: items for name, items in VOCAB.items() if (name != "chars" or chars) and (name != "cases" or cases)}
    return SequenceModel(vocab, encoder=SIZES | encoder, tagger=tagger or {}, classifier={}).eval()


def random_batch(model: SequenceModel, batch_size: int, max_len: int, seed: int) -> dict[str, torch.Tensor]:
    """A padded batch with random lengths in 1..T (the first one T), ids 0 at padding."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch_size,), generator=generator)
    lengths[0] = max_len
    real = torch.arange(max_len) < lengths[:, None]  # (B, T)
    batch = {"token_ids": torch.randint(2, len(VOCAB["tokens"]), (batch_size, max_len), generator=generator) * real}
    batch["lengths"] = lengths
    if model.encoder.char_cnn is not None:
        chars = torch.randint(1, len(VOCAB["chars"]), (batch_size, max_len, 4), generator=generator)  # (B, T, W)
        batch["char_ids"] = chars * real[..., None]
    if model.encoder.case_embedding is not None:
        batch["case_ids"] = torch.randint(1, len(CASES), (batch_size, max_len), generator=generator) * real
    return batch


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
    module = torch.jit.load(str(path))
    return lambda batch: module(**batch)


def run_onnx(path: Path):
    onnxruntime = pytest.importorskip("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options)
    return lambda batch: session.run(None, {name: tensor.numpy() for name, tensor in batch.items()})


@pytest.mark.parametrize(("bidirectional", "num_layers", "chars"), GRID)
def test_torchscript_parity(tmp_path, bidirectional, num_layers, chars):
    model = make_model(chars, bidirectional=bidirectional, num_layers=num_layers)
    export_torchscript(model, tmp_path / "model.pt")
    assert_parity(model, run_torchscript(tmp_path / "model.pt"))


@pytest.mark.parametrize(("bidirectional", "num_layers", "chars"), GRID)
def test_onnx_parity(tmp_path, bidirectional, num_layers, chars):
    pytest.importorskip("onnxruntime")
    model = make_model(chars, bidirectional=bidirectional, num_layers=num_layers)
    export_onnx(model, tmp_path / "model.onnx")
    assert_parity(model, run_onnx(tmp_path / "model.onnx"))


def test_case_feature_crf_emissions_and_metadata(tmp_path):
    pytest.importorskip("onnxruntime")
    model = make_model(chars=True, cases=True, tagger={"crf": True}, num_layers=2)
    wrapper = export_onnx(model, tmp_path / "model.onnx")
    assert wrapper.input_names == ["token_ids", "lengths", "char_ids", "case_ids"]
    assert_parity(model, run_onnx(tmp_path / "model.onnx"))  # the tagger's output is the CRF's emissions

    import onnx

    properties = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    metadata = json.loads(properties[METADATA])
    assert metadata["outputs"] == ["tagger", "classifier"] and metadata["vocab"] == VOCAB


def test_proj_size_exports_to_torchscript_only(tmp_path):
    model = make_model(bidirectional=True, num_layers=2, proj_size=3)
    export_torchscript(model, tmp_path / "model.pt")
    assert_parity(model, run_torchscript(tmp_path / "model.pt"))
    with pytest.raises(ExportError, match="proj_size"):
        export_onnx(model, tmp_path / "model.onnx")


def test_the_command_line_from_a_checkpoint_copied_alone(tmp_path, monkeypatch, capsys):
    model = make_model(chars=True, num_layers=2, bidirectional=True)
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


def test_an_encoder_holding_a_gru_fails_in_one_line_and_writes_nothing(tmp_path):
    """A template user's swap of nn.LSTM for nn.GRU: ONNX would take the GRU's 3 gates as an LSTM's 4 and fail
    only when run; the exporter names the layer instead."""
    model = make_model(bidirectional=True)
    lstm = model.encoder.lstm
    model.encoder.lstm = torch.nn.GRU(lstm.input_size, lstm.hidden_size, batch_first=True, bidirectional=True)
    for export, name in ((export_onnx, "model.onnx"), (export_torchscript, "model.pt")):
        with pytest.raises(ExportError, match="the encoder's recurrent layer is GRU; export knows nn.LSTM only"):
            export(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_differs_from_the_model_is_refused_and_not_written(tmp_path, monkeypatch, capsys):
    model = make_model(num_layers=2, bidirectional=True)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save(checkpoint | {"pytorch-lightning_version": lightning.__version__}, tmp_path / "model.ckpt")
    original = MaskedLSTM.forward
    monkeypatch.setattr(MaskedLSTM, "forward", lambda self, x, lengths: [t * 1.01 for t in original(self, x, lengths)])
    for format in ("torchscript", "onnx"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / "model.ckpt"), "--format", format])
        error = str(exit_info.value.code)
        assert error.startswith("seqmodels-export: error: the exported graph's tagger output differs from the model's")
        assert "nothing written" in error and "\n" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]
