"""Export a checkpoint's model to TorchScript or ONNX: padded ids in, each head's scores out; verified.

``seqmodels-export CHECKPOINT --format onnx|torchscript [--output PATH]`` (CHECKPOINT may also be a model folder
or a Hub repository id); ``--format hub`` writes a model folder to share instead (:mod:`.publish`).

The exported graph takes, with B = batch and T = padded length (both dynamic):

- ``token_ids`` (B, T) int64, ``lengths`` (B,) int64, each in 1..T;
- ``char_ids`` (B, T, W) int64, when the model has a character CNN (W, the longest word, is dynamic too);
- ``case_ids`` (B, T) int64, when the model has a case feature;

and returns what :meth:`SequenceModel.forward` returns in eval mode, one output per head, named after it
(``tagger`` (B, T, C) emissions, ``classifier`` (B, K) logits, ...; each head states its axes). What a
runtime needs besides the graph goes with the file as ``seqmodels.json`` (TorchScript extra file, ONNX
metadata property): the input and output names, the vocabularies, the data options (lower-casing,
characters per word) and the model's settings, with what decoding needs besides the scores (a CRF's
transitions), so that :class:`seqmodels.inference.onnx_runtime.OnnxPredictor` predicts from the file alone.

Before the file is written, the export runs it on padded batches of three shapes and compares every output
with the PyTorch model's (:func:`verify`); a mismatch, a graph that cannot run, or a recurrent layer the
exporter does not know ends it with one line, and nothing is written.

Not supported, by design: CRF decoding inside the graph (a CRF tagger exports its emissions; Viterbi runs
outside); ``proj_size`` > 0 to ONNX (its LSTM operator has no projection; TorchScript exports it);
training (the graph is the eval-mode model); TorchScript on other devices (it is traced on the CPU, and tracing
records the device).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.checkpoints import CheckpointError
from seqmodels.files import is_stream, replacing
from seqmodels.inference.folder import resolve
from seqmodels.inference.loading import load_model
from seqmodels.inference.publish import add_arguments, publish
from seqmodels.inference.onnx_runtime import METADATA, Runner, onnx_runner, torchscript_runner
from seqmodels.models.encoder import EncoderOutput
from seqmodels.models.masked_lstm import ExportError, check_maskable, masked_lstm
from seqmodels.models.sequence_model import SequenceModel

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_AXES = {"token_ids": {0: "B", 1: "T"}, "lengths": {0: "B"}, "char_ids": {0: "B", 1: "T", 2: "W"},
              "case_ids": {0: "B", 1: "T"}}  # fmt: skip
VERIFY_SHAPES = [(1, 1), (5, 7), (9, 13)]  # (B, T) of the batches every export is checked on
TOLERANCE = 1e-4  # the largest difference from the PyTorch model's scores an export may have


class ExportableModel(nn.Module):
    """A :class:`SequenceModel`, put in eval mode, whose LSTM runs on the padded batch
    (:func:`~seqmodels.models.masked_lstm.masked_lstm`), never packed."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.encoder = model.encoder
        check_maskable(model.encoder.lstm)
        self.heads = model.heads
        self.input_names = ["token_ids", "lengths"]
        self.input_names += ["char_ids"] if model.encoder.chars is not None else []
        self.input_names += ["case_ids"] if model.encoder.case_embedding is not None else []
        self.output_names = list(model.heads)
        self.eval()

    def forward(
        self, token_ids: Tensor, lengths: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        embedded = self.encoder.embed(token_ids, char_ids, case_ids)  # (B, T, E')
        encoded = EncoderOutput(*masked_lstm(self.encoder.lstm, embedded, lengths))  # (B, T, D*P), (B, D*P)
        return tuple(head(encoded) for head in self.heads.values())  # in the order of output_names


def random_batch(model: SequenceModel, batch_size: int, max_len: int, seed: int) -> dict[str, Tensor]:
    """A padded batch of random ids (any id but ``<pad>``), lengths in 1..T (the first one T), words of 1..4
    characters, 0 at padding."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch_size,), generator=generator)
    lengths[0] = max_len
    real = torch.arange(max_len) < lengths[:, None]  # (B, T)
    sizes = {name: len(items) for name, items in model.hparams.vocab.items()}
    batch = {"token_ids": torch.randint(1, sizes["tokens"], (batch_size, max_len), generator=generator) * real}
    batch["lengths"] = lengths
    if model.encoder.chars is not None:
        chars = torch.randint(1, sizes["chars"], (batch_size, max_len, 4), generator=generator)  # (B, T, W)
        word_lengths = torch.randint(1, 5, (batch_size, max_len, 1), generator=generator)  # (B, T, 1): 1..W chars
        batch["char_ids"] = chars * real[..., None] * (torch.arange(4) < word_lengths)  # 0 after each word
    if model.encoder.case_embedding is not None:
        batch["case_ids"] = torch.randint(1, sizes["cases"], (batch_size, max_len), generator=generator) * real
    return batch


def verify(model: SequenceModel, wrapper: ExportableModel, run: Runner) -> None:
    """Run the exported graph on padded batches of several shapes and compare every output with the PyTorch
    model's; :class:`ExportError` naming the first output that differs, or the batch the graph cannot run."""
    for seed, (batch_size, max_len) in enumerate(VERIFY_SHAPES):
        batch = random_batch(model, batch_size, max_len, seed)
        with torch.no_grad():
            expected = model(**batch)
        try:
            outputs = run({name: batch[name] for name in wrapper.input_names})
        except Exception as error:  # onnxruntime and TorchScript raise their own types
            lines = str(error).strip().splitlines() or [type(error).__name__]
            message = f"the exported graph fails on a {batch_size}x{max_len} batch ({lines[0]}); nothing written"
            raise ExportError(message) from None
        for name, output in zip(wrapper.output_names, outputs):
            difference = (torch.as_tensor(output) - expected[name]).abs().max().item()
            if not difference <= TOLERANCE:
                raise ExportError(
                    f"the exported graph's {name} output differs from the model's by {difference:.3g} "
                    f"(more than {TOLERANCE}) on a {batch_size}x{max_len} batch; nothing written"
                )


def example_inputs(wrapper: ExportableModel) -> dict[str, Tensor]:
    """A batch to trace with: lengths 3 and 2, ids 1 (``<unk>``, valid in any vocabulary) and 0 at padding."""
    ids = torch.tensor([[1, 1, 1], [1, 1, 0]])  # (B=2, T=3)
    inputs = {"lengths": torch.tensor([3, 2]), "char_ids": ids[..., None].repeat(1, 1, 2)}  # char_ids: (B, T, W=2)
    return {name: inputs.get(name, ids.clone()) for name in wrapper.input_names}  # token_ids, case_ids: ids


def metadata(model: SequenceModel, wrapper: ExportableModel) -> str:
    """What a runtime needs besides the graph (see the module docstring), as JSON."""
    settings = {key: value for key, value in model.hparams.items() if key not in ("vocab", "data_options")}
    decode_state = {
        f"heads.{name}.{key}": tensor.tolist() for name, head in model.heads.items()
        for key, tensor in head.decode_state().items()
    }  # fmt: skip
    return json.dumps({
        "inputs": wrapper.input_names,
        "outputs": wrapper.output_names,
        "vocab": model.hparams.vocab,
        "data_options": model.hparams.data_options,
        "model": {key: value for key, value in settings.items() if not key.startswith("_")},
        "decode_state": decode_state,
    })


@contextlib.contextmanager
def _without_false_alarms() -> Iterator[None]:
    """Silence the tracers' warnings that do not apply here (deprecation warnings stay)."""
    with warnings.catch_warnings():
        # nn.LSTM checks its input's sizes in Python: the checks are not recorded, and they hold for any B and T.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module="torch.nn.modules.rnn")
        # Raised for every LSTM; the initial states follow the input's B here, so any B works (the tests try several).
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        yield


def _write_torchscript(model: SequenceModel, wrapper: ExportableModel, path: Path) -> None:
    with torch.no_grad(), _without_false_alarms():
        traced = torch.jit.trace(wrapper, example_kwarg_inputs=example_inputs(wrapper))
    torch.jit.save(traced, str(path), _extra_files={METADATA: metadata(model, wrapper)})


def _write_onnx(model: SequenceModel, wrapper: ExportableModel, path: Path) -> None:
    import onnx

    axes = INPUT_AXES | {name: dict(head.export_axes) for name, head in model.heads.items()}
    # The TorchScript-based exporter (deprecated) exports each nn.LSTM as one ONNX LSTM operator, B and T dynamic.
    with _without_false_alarms():
        torch.onnx.export(
            wrapper,
            (),
            str(path),
            kwargs=example_inputs(wrapper),
            input_names=wrapper.input_names,
            output_names=wrapper.output_names,
            dynamic_axes={name: axes[name] for name in wrapper.input_names + wrapper.output_names},
            dynamo=False,
        )
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {METADATA: metadata(model, wrapper)})
    onnx.save(graph, str(path))


def _export(
    model: SequenceModel, path: Path, write: Callable[..., None], runner: Callable[[Path], Runner]
) -> ExportableModel:
    """Write the export beside ``path``, run it against the model (:func:`verify`), and only then rename it to
    ``path``: a failed export leaves no file."""
    wrapper = ExportableModel(model)
    if is_stream(path):
        raise ExportError(f"{path} is a stream; an export is written to a file, then read back to check it")
    with replacing(path) as partial:
        write(model, wrapper, partial)
        verify(model, wrapper, runner(partial))
    return wrapper


def export_torchscript(model: SequenceModel, path: Path) -> ExportableModel:
    """Trace the model (verified); ``torch.jit.load(path)`` gives a module to call with the inputs as keywords."""
    return _export(model, path, _write_torchscript, torchscript_runner)


def export_onnx(model: SequenceModel, path: Path) -> ExportableModel:
    """Export with the TorchScript-based exporter (``dynamo=False``), B, T and W dynamic, verified with ONNX
    Runtime; needs the ``onnx`` extra."""
    if model.encoder.lstm.proj_size:
        raise ExportError("proj_size > 0 cannot be exported to ONNX (its LSTM operator has no projection); "
                          "use --format torchscript")  # fmt: skip
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'seqmodels[onnx]'") from None
    return _export(model, path, _write_onnx, onnx_runner)


EXPORTERS: dict[str, Callable[[SequenceModel, Path], Any]] = {"onnx": export_onnx, "torchscript": export_torchscript}


def main(argv: list[str] | None = None) -> None:
    """The console script; a checkpoint or model it cannot export ends it with one line, ``seqmodels-export: error``."""
    parser = argparse.ArgumentParser(prog="seqmodels-export", description="Export a seqmodels checkpoint's model.",
                                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("checkpoint", help="a seqmodels .ckpt (the file alone is enough), or a model folder or Hub "
                        "repository id for onnx and torchscript")  # fmt: skip
    parser.add_argument("--format", choices=[*EXPORTERS, "hub"], required=True)
    parser.add_argument("--output", type=Path, help="default: the checkpoint's or the folder's path with .onnx / "
                        ".pt (NAME.onnx here for a repository id); for hub, the checkpoint's path without .ckpt")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        source = resolve(args.checkpoint)
        if args.format == "hub":
            print(publish(source, args.output or source.with_suffix(""), args))
            return
        # by default beside the checkpoint or folder; for a repository id, NAME.onnx in the current folder
        named = Path(args.checkpoint) if Path(args.checkpoint).exists() else Path(Path(args.checkpoint).name)
        output = args.output or named.with_suffix(SUFFIXES[args.format])
        output.parent.mkdir(parents=True, exist_ok=True)
        wrapper = EXPORTERS[args.format](load_model(source), output)
    except (CheckpointError, ExportError) as error:
        raise SystemExit(f"seqmodels-export: error: {error}") from None
    except OSError as error:  # an output that cannot be written
        said = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)
        raise SystemExit(f"seqmodels-export: error: {said}") from None
    print(f"{output}: inputs {', '.join(wrapper.input_names)} -> outputs {', '.join(wrapper.output_names)} "
          f"(checked against the model on {len(VERIFY_SHAPES)} padded batches)")  # fmt: skip


if __name__ == "__main__":
    main()
