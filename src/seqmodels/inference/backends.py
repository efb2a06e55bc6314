"""Where prediction's scores come from: the PyTorch model, its dynamic int8 quantisation, or an export of it
(ONNX Runtime, TorchScript) made once and cached beside the checkpoint (a model folder's, in the user's cache),
keyed on its hash.

Whatever the backend, the model's own heads decode the scores, so every backend writes the same records
(:class:`~seqmodels.inference.predictor.Predictor`); the exports are verified against the model when made.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from seqmodels.inference.export import EXPORTERS, SUFFIXES, ExportableModel
from seqmodels.inference.folder import CONFIG, VOCAB, WEIGHTS, resolve
from seqmodels.inference.loading import load_model
from seqmodels.inference.onnx_runtime import ExportedScorer, onnx_runner, torchscript_runner
from seqmodels.inference.predictor import Predictor
from seqmodels.models.masked_lstm import ExportError

BACKENDS = ("torch", "torch-int8", "onnx", "torchscript")


def cached_export(source: str | Path, format: str) -> Path:
    """The model's export in ``format``, beside its checkpoint as ``NAME.<sha256 prefix>.onnx`` (or ``.pt``), or,
    for a model folder (which may be a Hub cache's snapshot, or about to be uploaded), in the user's cache
    (``$XDG_CACHE_HOME/seqmodels/exports``, else ``~/.cache/...``): made and verified the first time, reused
    after; a changed model has another hash, hence a new export."""
    source = resolve(source)
    files = [source / name for name in (CONFIG, VOCAB, WEIGHTS)] if source.is_dir() else [source]
    digest = hashlib.sha256(b"".join(file.read_bytes() for file in files)).hexdigest()[:12]
    if source.is_dir():
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqmodels" / "exports"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"model.{digest}{SUFFIXES[format]}"
    else:
        path = source.with_name(f"{source.stem}.{digest}{SUFFIXES[format]}")
    if not path.is_file():
        EXPORTERS[format](load_model(source), path)
    return path


def load_predictor(
    checkpoint: str | Path,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 32,
    max_tokens: int = 512,
    precision: str = "32",
) -> Predictor:
    """A :class:`Predictor` for the checkpoint, scoring with ``backend`` (see :data:`BACKENDS`) in ``precision``
    (``bf16``: the torch backend's forward pass under autocast)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "torch" and device != "cpu":
        raise ValueError(f"the {backend} backend runs on the CPU; --device {device} needs --backend torch")
    if backend != "torch" and precision != "32":
        raise ValueError(f"--precision {precision} needs --backend torch (the {backend} backend runs its own types)")
    checkpoint = resolve(checkpoint)  # a Hub repository id is fetched once, here
    model = load_model(checkpoint, device)
    if backend == "torch":
        return Predictor(model, batch_size, max_tokens, precision=precision)
    if backend == "torch-int8":  # the LSTM's and the linear layers' weights as int8, activations quantised on the fly
        quantized = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
        quantized.encoder.kernel = "packed"  # an int8 LSTM runs packed only, whatever kernel the model trained with
        return Predictor(quantized, batch_size, max_tokens)
    try:
        path = cached_export(checkpoint, backend)
    except ExportError as error:
        raise ValueError(f"cannot serve {checkpoint} with the {backend} backend: {error}") from None
    wrapper = ExportableModel(model)
    # ONNX Runtime takes torch's threads, which the server sets per model process (it would take every core)
    run = onnx_runner(path, torch.get_num_threads()) if backend == "onnx" else torchscript_runner(path)
    scorer = ExportedScorer(run, wrapper.input_names, wrapper.output_names)
    return Predictor(model, batch_size, max_tokens, scorer=scorer)
