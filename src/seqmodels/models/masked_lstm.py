"""The encoder's LSTM run on a padded batch without packing, with the packed LSTM's results.

Two reasons to run it so. On the CPU, PyTorch's fast LSTM kernels (oneDNN's) take only unpacked input: UD-EWT's
tagger trains and predicts 1.15–1.21x as fast as packed (benchmarks/README.md), and under bf16 autocast the LSTM
itself runs in bf16. And export: ONNX has no PackedSequence, and tracing would bake in one batch's lengths. It
computes every padded step, so :class:`~seqmodels.models.encoder.LSTMEncoder` uses it on length-bucketed batches.

Each direction of each layer runs as its own one-layer LSTM call on the original's weights, and the padding is
handled by reordering time within each sentence's length:

- forward: left to right over the padded batch; an output depends only on earlier tokens, so it is exact
  before each sentence's length, and the final state is the output at ``length - 1``;
- backward: each sentence reversed within its own length (padding stays at the end), run left to right, and
  reversed back; its final state is the output at the true first token.

A :class:`~seqmodels.models.separate_directions.SeparateDirectionsLSTM` runs as its two unidirectional stacks, the
backward one on each sentence reversed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.models.separate_directions import SeparateDirectionsLSTM


class ExportError(ValueError):
    """The model has something the chosen export format cannot express."""


def stacks(lstm: nn.Module) -> list[nn.Module]:
    """The LSTM stacks that ``lstm`` runs: itself, or a ``SeparateDirectionsLSTM``'s two."""
    return [lstm.forward_stack, lstm.backward_stack] if isinstance(lstm, SeparateDirectionsLSTM) else [lstm]


def maskable(lstm: nn.Module) -> bool:
    """Whether :func:`masked_lstm` can run ``lstm``: batch-first ``nn.LSTM`` stacks (not, say, an int8 one)."""
    return all(type(stack) is nn.LSTM and stack.batch_first for stack in stacks(lstm))


def check_maskable(lstm: nn.Module) -> None:
    """Fail in one line on a recurrent layer :func:`masked_lstm` cannot run (a GRU's weights would load into an
    LSTM's operator, and fail only at run time)."""
    if not maskable(lstm):
        names = ", ".join(type(stack).__name__ for stack in stacks(lstm))
        raise ExportError(f"the encoder's recurrent layer is {names}; export knows batch-first nn.LSTM only "
                          "(teach seqmodels.models.masked_lstm the new layer)")  # fmt: skip


def reverse_within_lengths(x: Tensor, index: Tensor) -> Tensor:
    """Reorder the time axis of ``x`` (B, T, F) by ``index`` (B, T) (see the module docstring)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.size(-1)))  # (B, T, F)


def one_direction(lstm: nn.LSTM, layer: int, suffix: str, x: Tensor) -> Tensor:
    """``lstm``'s ``layer`` in one direction (``suffix``: "" or "_reverse") read left to right over ``x`` (B, T, F)
    -> (B, T, P): the same operator ``nn.LSTM`` calls, on that layer's weights."""
    names = ["weight_ih", "weight_hh"] + ["bias_ih", "bias_hh"] * lstm.bias + ["weight_hr"] * bool(lstm.proj_size)
    weights = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in names]
    h_0 = x.new_zeros(1, x.size(0), lstm.proj_size or lstm.hidden_size)  # (1, B, P)
    c_0 = x.new_zeros(1, x.size(0), lstm.hidden_size)  # (1, B, H)
    return torch.lstm(x, (h_0, c_0), weights, lstm.bias, 1, 0.0, lstm.training, False, True)[0]  # (B, T, P)


def one_stack(lstm: nn.LSTM, x: Tensor, lengths: Tensor, reverse: Tensor) -> tuple[Tensor, Tensor]:
    """An ``nn.LSTM``'s layers over ``x`` (B, T, F), with its dropout between them -> outputs (B, T, D*P), not
    masked at padding, and the last layer's final states (B, D*P)."""
    for layer in range(lstm.num_layers):
        if layer:
            x = F.dropout(x, lstm.dropout, lstm.training)  # as nn.LSTM, on every layer's output but the last
        forward = one_direction(lstm, layer, "", x)  # (B, T, P)
        if lstm.bidirectional:
            backward = one_direction(lstm, layer, "_reverse", reverse_within_lengths(x, reverse))  # reversed
            backward = reverse_within_lengths(backward, reverse)  # (B, T, P), back in reading order
            x = torch.cat([forward, backward], dim=-1)  # (B, T, 2*P)
        else:
            x = forward  # (B, T, P)
    last = (lengths - 1).unsqueeze(-1).expand(-1, 1, forward.size(-1))  # (B, 1, P)
    finals = [forward.gather(1, last).squeeze(1)]  # (B, P): the forward state at each true last token
    if lstm.bidirectional:
        finals.append(backward[:, 0])  # (B, P): the backward state at the true first token
    return x, torch.cat(finals, dim=-1)  # (B, T, D*P), (B, D*P)


def masked_lstm(lstm: nn.LSTM | SeparateDirectionsLSTM, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``lstm`` over ``x`` (B, T, E') with ``lengths`` (B,) in 1..T -> ``outputs`` (B, T, D*P), zero at padding
    as ``pad_packed_sequence`` leaves them, and ``final`` (B, D*P), as the encoder returns them."""
    positions = torch.arange(x.size(1), device=x.device)  # (T,)
    lengths = lengths.to(x.device, torch.long).unsqueeze(1)  # (B, 1), the index type gather takes
    real = positions < lengths  # (B, T)
    # t -> length-1-t at real tokens, t at padding: reverses each sentence in place (its own inverse).
    reverse = torch.where(real, lengths - 1 - positions, positions)  # (B, T)
    if isinstance(lstm, SeparateDirectionsLSTM):  # the backward stack reads each sentence reversed
        outputs, final = one_stack(lstm.forward_stack, x, lengths, reverse)  # (B, T, P), (B, P)
        backward, backward_final = one_stack(lstm.backward_stack, reverse_within_lengths(x, reverse), lengths, reverse)
        outputs = torch.cat([outputs, reverse_within_lengths(backward, reverse)], dim=-1)  # (B, T, 2*P)
        final = torch.cat([final, backward_final], dim=-1)  # (B, 2*P)
    else:
        outputs, final = one_stack(lstm, x, lengths, reverse)  # (B, T, D*P), (B, D*P)
    return outputs.masked_fill(~real.unsqueeze(-1), 0.0), final
