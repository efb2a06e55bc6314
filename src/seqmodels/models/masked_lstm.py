"""The encoder's LSTM run on a padded batch without packing, exactly as the packed LSTM: what export traces.

Packed sequences do not export (ONNX has no PackedSequence, and tracing would bake in one batch's lengths),
so :class:`MaskedLSTM` runs each direction of each layer as its own one-layer LSTM (sharing the weights)
and handles the padding by reordering time within each sentence's length. A
:class:`~seqmodels.models.separate_directions.SeparateDirectionsLSTM` runs as two such stacks, the backward one
on each sentence reversed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqmodels.models.separate_directions import SeparateDirectionsLSTM


class ExportError(ValueError):
    """The model has something the chosen export format cannot express."""


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

    Outputs at padding are zero, as ``pad_packed_sequence`` leaves them. A ``SeparateDirectionsLSTM`` runs as two
    unidirectional ``MaskedLSTM``: its forward stack, and its backward stack on each sentence reversed.
    """

    def __init__(self, lstm: nn.LSTM | SeparateDirectionsLSTM) -> None:
        super().__init__()
        self.backward_stack = None
        if isinstance(lstm, SeparateDirectionsLSTM):
            self.backward_stack = MaskedLSTM(lstm.backward_stack)
            lstm = lstm.forward_stack
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
        if self.backward_stack is not None:  # its forward pass over the reversed sentences, reversed back
            backward_outputs, backward_final = self.backward_stack(reverse_within_lengths(x, reverse), lengths[:, 0])
            backward_outputs = reverse_within_lengths(backward_outputs, reverse)  # (B, T, P)
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
        if self.backward_stack is not None:
            outputs, finals = torch.cat([outputs, backward_outputs], dim=-1), [*finals, backward_final]  # (B, T, 2*P)
        return outputs, torch.cat(finals, dim=-1)  # (B, T, D*P), (B, D*P)
