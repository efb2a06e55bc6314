"""Export a checkpoint's model to TorchScript or ONNX: padded ids in, each head's scores out.

``seqmodels-export CHECKPOINT --format onnx|torchscript [--output PATH]``

The exported graph takes, with B = batch and T = padded length (both dynamic):

- ``token_ids`` (B, T) int64, ``lengths`` (B,) int64, each in 1..T;
- ``char_ids`` (B, T, W) int64, when the model has a character CNN (W, the longest word, is dynamic too);
- ``case_ids`` (B, T) int64, when the model has a case feature;

and returns what :meth:`SequenceModel.forward` returns in eval mode, in this order: ``tagger`` (B, T, C)
emissions and/or ``classifier`` (B, K) logits. The vocabularies and the input/output names go with the
file as ``seqmodels.json`` (TorchScript extra file, ONNX metadata property), so that a runtime can map
strings to ids without the checkpoint.

Packed sequences do not export (ONNX has no PackedSequence, and tracing would bake in one batch's lengths),
so :class:`MaskedLSTM` reproduces the packed LSTM on the padded batch, exactly at every real position.

Not supported, by design:

- CRF decoding: a CRF tagger exports its emissions; Viterbi decoding (``model.heads["tagger"].crf.decode``)
  stays outside the graph.
- ``proj_size`` > 0 to ONNX: the ONNX LSTM operator has no projection (:class:`ExportError`); TorchScript
  exports it.
- ``h_n`` / ``c_n``: not computed (the heads read only the encoder's ``outputs`` and ``final``).
- Training: the graph is the eval-mode model (no dropout).
- Other devices for TorchScript: it is traced on the CPU, and tracing records the device.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from seqmodels.checkpoints import CheckpointError
from seqmodels.encoder import EncoderOutput
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.predict import load_model

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA = "seqmodels.json"
DYNAMIC_AXES = {
    "token_ids": {0: "B", 1: "T"},
    "lengths": {0: "B"},
    "char_ids": {0: "B", 1: "T", 2: "W"},
    "case_ids": {0: "B", 1: "T"},
    "tagger": {0: "B", 1: "T"},
    "classifier": {0: "B"},
}


class ExportError(ValueError):
    """The model has something the chosen format cannot express."""


def reverse_within_lengths(x: Tensor, index: Tensor) -> Tensor:
    """Reorder the time axis of ``x`` (B, T, F) by ``index`` (B, T) (see :class:`MaskedLSTM`)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))  # (B, T, F)


def one_direction(lstm: nn.LSTM, layer: int, suffix: str) -> nn.LSTM:
    """A one-layer unidirectional LSTM sharing the weights of ``lstm``'s ``layer`` (``suffix``: "" or "_reverse")."""
    if type(lstm) is not nn.LSTM:  # a GRU's weights would load into an LSTM's operator, and fail only at run time
        raise ExportError(
            f"the encoder's recurrent layer is {type(lstm).__name__}; export knows nn.LSTM only "
            "(teach seqmodels.export.one_direction the new layer)"
        )
    input_size = getattr(lstm, f"weight_ih_l{layer}{suffix}").size(1)
    single = nn.LSTM(input_size, lstm.hidden_size, bias=lstm.bias, batch_first=True, proj_size=lstm.proj_size)
    for name, _ in list(single.named_parameters()):  # weight_ih_l0 <- weight_ih_l{layer}{suffix}, ...
        setattr(single, name, getattr(lstm, name.replace("_l0", f"_l{layer}{suffix}")))  # shared, not copied
    return single


class MaskedLSTM(nn.Module):
    """A batch-first ``nn.LSTM`` run on a padded batch without packing, with the packed LSTM's results.

    Each direction of each layer runs as its own one-layer LSTM that shares the original's weights:

    - forward: left to right over the padded batch; an output depends only on earlier tokens, so it is
      exact before each sentence's length, and the final state is the output at ``length - 1``;
    - backward: each sentence reversed within its own length (padding stays at the end), run left to
      right, and reversed back; its final state is the output at the true first token.

    Outputs at padding are zero, as ``pad_packed_sequence`` leaves them.
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        if not lstm.batch_first:
            raise ExportError("MaskedLSTM expects a batch_first LSTM, like LSTMEncoder's")
        suffixes = ("", "_reverse") if lstm.bidirectional else ("",)
        self.layers = nn.ModuleList(
            nn.ModuleList(one_direction(lstm, layer, suffix) for suffix in suffixes) for layer in range(lstm.num_layers)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, T, E'), ``lengths`` (B,) in 1..T -> ``outputs`` (B, T, D*P), ``final`` (B, D*P)."""
        positions = torch.arange(x.size(1), device=x.device)  # (T,)
        lengths = lengths.to(x.device).unsqueeze(1)  # (B, 1)
        real = positions < lengths  # (B, T)
        # t -> length-1-t at real tokens, t at padding: reverses each sentence in place (its own inverse).
        reverse = torch.where(real, lengths - 1 - positions, positions)  # (B, T)
        for directions in self.layers:
            forward = directions[0](x)[0]  # (B, T, P)
            if len(directions) == 2:
                backward = reverse_within_lengths(directions[1](reverse_within_lengths(x, reverse))[0], reverse)
                x = torch.cat([forward, backward], dim=-1)  # (B, T, 2*P)
            else:
                x = forward  # (B, T, P)
        last = (lengths - 1).unsqueeze(-1).expand(-1, 1, forward.size(-1))  # (B, 1, P)
        finals = [forward.gather(1, last).squeeze(1)]  # (B, P): forward state at each true last token
        if len(self.layers[-1]) == 2:
            finals.append(backward[:, 0])  # (B, P): backward state at the true first token
        outputs = x.masked_fill(~real.unsqueeze(-1), 0.0)  # (B, T, D*P)
        return outputs, torch.cat(finals, dim=-1)  # (B, T, D*P), (B, D*P)


class ExportableModel(nn.Module):
    """A :class:`SequenceModel`, put in eval mode, with its packed LSTM replaced by :class:`MaskedLSTM`."""

    def __init__(self, model: SequenceModel) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.lstm = MaskedLSTM(model.encoder.lstm)
        self.heads = model.heads
        self.input_names = ["token_ids", "lengths"]
        self.input_names += ["char_ids"] if model.encoder.char_cnn is not None else []
        self.input_names += ["case_ids"] if model.encoder.case_embedding is not None else []
        self.output_names = list(model.heads)
        self.eval()

    def forward(
        self, token_ids: Tensor, lengths: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        embedded = self.encoder.embed(token_ids, char_ids, case_ids)  # (B, T, E')
        outputs, final = self.lstm(embedded, lengths)  # (B, T, D*P), (B, D*P)
        not_computed = final.new_empty(0)  # h_n, c_n: the heads read only outputs and final
        encoded = EncoderOutput(outputs, final, not_computed, not_computed)
        return tuple(head(encoded) for head in self.heads.values())  # tagger (B, T, C), classifier (B, K)


def random_batch(model: SequenceModel, batch_size: int, max_len: int, seed: int) -> dict[str, Tensor]:
    """A padded batch of random ids (any id but ``<pad>``), lengths in 1..T (the first one T), 0 at padding."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch_size,), generator=generator)
    lengths[0] = max_len
    real = torch.arange(max_len) < lengths[:, None]  # (B, T)
    sizes = {name: len(items) for name, items in model.hparams.vocab.items()}
    batch = {"token_ids": torch.randint(1, sizes["tokens"], (batch_size, max_len), generator=generator) * real}
    batch["lengths"] = lengths
    if model.encoder.char_cnn is not None:
        chars = torch.randint(1, sizes["chars"], (batch_size, max_len, 4), generator=generator)  # (B, T, W)
        batch["char_ids"] = chars * real[..., None]
    if model.encoder.case_embedding is not None:
        batch["case_ids"] = torch.randint(1, sizes["cases"], (batch_size, max_len), generator=generator) * real
    return batch


VERIFY_SHAPES = [(1, 1), (5, 7), (9, 13)]  # (B, T) of the batches every export is checked on
TOLERANCE = 1e-4  # the largest difference from the PyTorch model's scores an export may have
Runner = Callable[[dict[str, Tensor]], list]  # inputs by name -> the outputs, in the graph's order


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
    """What a runtime needs besides the graph: input and output names, the vocabularies (index = id) and the
    data options (lower-casing, characters per word)."""
    return json.dumps({
        "inputs": wrapper.input_names,
        "outputs": wrapper.output_names,
        "vocab": model.hparams.vocab,
        "data_options": model.hparams.data_options,
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


def torchscript_runner(path: Path) -> Runner:
    """A TorchScript export as a function: ``torch.jit.load(path)`` called with the inputs as keywords."""
    module = torch.jit.load(str(path))
    return lambda inputs: list(module(**inputs))


def _write_onnx(model: SequenceModel, wrapper: ExportableModel, path: Path) -> None:
    import onnx

    names = wrapper.input_names + wrapper.output_names
    # The TorchScript-based exporter (deprecated) exports each nn.LSTM as one ONNX LSTM operator, B and T dynamic.
    with _without_false_alarms():
        torch.onnx.export(
            wrapper,
            (),
            str(path),
            kwargs=example_inputs(wrapper),
            input_names=wrapper.input_names,
            output_names=wrapper.output_names,
            dynamic_axes={name: DYNAMIC_AXES[name] for name in names},
            dynamo=False,
        )
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {METADATA: metadata(model, wrapper)})
    onnx.save(graph, str(path))


def onnx_runner(path: Path, threads: int = 0) -> Runner:
    """An ONNX export as a function, run by ONNX Runtime on the CPU (``threads`` 0: its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda inputs: [torch.from_numpy(x) for x in session.run(None, {k: v.numpy() for k, v in inputs.items()})]


def _export(model: SequenceModel, path: Path, write, runner) -> ExportableModel:
    """Write the export beside ``path``, run it against the model (:func:`verify`), and only then rename it to
    ``path``: a failed export leaves no file."""
    wrapper = ExportableModel(model)
    partial = path.with_name(path.name + ".partial")
    try:
        write(model, wrapper, partial)
        verify(model, wrapper, runner(partial))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return wrapper


def export_torchscript(model: SequenceModel, path: Path) -> ExportableModel:
    """Trace the model (verified); ``torch.jit.load(path)`` gives a module to call with the inputs as keywords."""
    return _export(model, path, _write_torchscript, torchscript_runner)


def export_onnx(model: SequenceModel, path: Path) -> ExportableModel:
    """Export with the TorchScript-based exporter (``dynamo=False``), B, T and W dynamic, verified with ONNX
    Runtime; needs ``seqmodels[onnx]``."""
    if model.encoder.lstm.proj_size:
        raise ExportError("proj_size > 0 cannot be exported to ONNX (its LSTM operator has no projection); "
                          "use --format torchscript")  # fmt: skip
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'seqmodels[onnx]'") from None
    return _export(model, path, _write_onnx, onnx_runner)


EXPORTERS = {"onnx": export_onnx, "torchscript": export_torchscript}


def main(argv: list[str] | None = None) -> None:
    """The console script; a checkpoint or model it cannot export ends it with one line, ``seqmodels-export: error``."""
    parser = argparse.ArgumentParser(prog="seqmodels-export", description="Export a seqmodels checkpoint's model.")
    parser.add_argument("checkpoint", help="a seqmodels .ckpt (the file alone is enough)")
    parser.add_argument("--format", choices=EXPORTERS, required=True)
    parser.add_argument("--output", type=Path, help="default: the checkpoint's path with .onnx / .pt")
    args = parser.parse_args(argv)
    output = args.output or Path(args.checkpoint).with_suffix(SUFFIXES[args.format])
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        wrapper = EXPORTERS[args.format](load_model(args.checkpoint), output)
    except (CheckpointError, ExportError) as error:
        raise SystemExit(f"seqmodels-export: error: {error}") from None
    print(f"{output}: inputs {', '.join(wrapper.input_names)} -> outputs {', '.join(wrapper.output_names)} "
          f"(checked against the model on {len(VERIFY_SHAPES)} padded batches)")  # fmt: skip


if __name__ == "__main__":
    main()
