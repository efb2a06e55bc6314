"""Running an exported model: ONNX Runtime or TorchScript in place of the PyTorch model's forward pass.

- :func:`onnx_runner` / :func:`torchscript_runner`: an exported file as a function, inputs by name ->
  outputs in the graph's order (what :func:`seqmodels.inference.export.verify` compares with the model);
- :class:`ExportedScorer`: the same, as the ``scorer`` of a :class:`~seqmodels.inference.predictor.Predictor`
  (each head's scores by name), so that prediction decodes an export's scores with the model's heads;
- :class:`OnnxPredictor`: prediction from an ``.onnx`` file alone, its vocabularies, data options and
  decoding state read from the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqmodels.inference.predictor import Predictor
from seqmodels.models.sequence_model import SequenceModel

METADATA = "seqmodels.json"  # the name of the metadata an export carries (ONNX property, TorchScript extra file)
Runner = Callable[[dict[str, Tensor]], list[Tensor]]  # inputs by name -> the outputs, in the graph's order


def onnx_runner(path: str | Path, threads: int = 0) -> Runner:
    """An ONNX export as a function, run by ONNX Runtime on the CPU (``threads`` 0: its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda inputs: [torch.from_numpy(x) for x in session.run(None, {k: v.numpy() for k, v in inputs.items()})]


def torchscript_runner(path: str | Path) -> Runner:
    """A TorchScript export as a function: ``torch.jit.load(path)`` called with the inputs as keywords."""
    module = torch.jit.load(str(path))
    return lambda inputs: list(module(**inputs))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``seqmodels.json`` an ONNX export carries (see :mod:`seqmodels.inference.export`)."""
    import onnx

    properties = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(properties[METADATA])


class ExportedScorer:
    """An exported graph as a :class:`~seqmodels.inference.predictor.Predictor`'s scorer: the model's inputs as keywords
    (``None`` for features it does not read) -> each head's scores by name, on the CPU."""

    def __init__(self, run: Runner, input_names: list[str], output_names: list[str]) -> None:
        self.run, self.input_names, self.output_names = run, input_names, output_names

    def __call__(self, **inputs: Tensor | None) -> dict[str, Tensor]:
        outputs = self.run({name: inputs[name].cpu() for name in self.input_names})
        return dict(zip(self.output_names, outputs))


class OnnxPredictor:
    """Prediction from an ONNX export alone: token lists in, the records ``seqmodels-predict`` writes out.

    The model's settings in the file's metadata rebuild its heads for decoding (their weights stay unused:
    ONNX Runtime computes the scores) and a CRF's transitions are loaded from it, so the records equal the
    checkpoint's, up to float rounding. ``predict(["The film was great !".split()])``.
    """

    def __init__(self, path: str | Path, batch_size: int = 32, threads: int = 0) -> None:
        meta = read_metadata(path)
        model = SequenceModel(vocab=meta["vocab"], data_options=meta["data_options"], **meta["model"]).eval()
        state = {key: torch.tensor(value) for key, value in meta["decode_state"].items()}
        unexpected = model.load_state_dict(state, strict=False).unexpected_keys  # the heads' decoding state only
        if unexpected:
            raise ValueError(f"{path}: its decoding state has {unexpected[0]!r}, which its model does not have")
        scorer = ExportedScorer(onnx_runner(path, threads), meta["inputs"], meta["outputs"])
        self.predict = Predictor(model, batch_size=batch_size, scorer=scorer)

    def __call__(self, sentences: list[list[str]]) -> list[dict[str, Any]]:
        return self.predict(sentences)
