"""A bidirectional LSTM whose two directions never mix (ELMo's biLM): two unidirectional stacks, one reading
left to right, one right to left, with their outputs concatenated only after the last layer.

In ``nn.LSTM(bidirectional=True)`` with two or more layers, layer 2's forward state at t reads layer 1's
backward state at t, which has read the words after t. Here the forward stack's state at t has read only
words 0..t and the backward stack's only t..T-1, at every depth, so a language model can train on each
(:class:`~seqmodels.models.heads.lm.LanguageModelHead`) without ever seeing the word it predicts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


def reverse_packed(packed: PackedSequence) -> PackedSequence:
    """Each sequence of ``packed`` reversed within its own length: what a backward LSTM reads left to right.

    Packed data is time-major: step t holds the ``batch_sizes[t]`` longest sequences, in one fixed order. The
    element of sequence i at step t moves to step ``length_i - 1 - t``; reversing twice gives the input back.
    """
    batch_sizes = packed.batch_sizes  # (T,), on the CPU
    starts = torch.cumsum(batch_sizes, 0) - batch_sizes  # (T,): where each step's rows begin
    steps = torch.repeat_interleave(torch.arange(len(batch_sizes)), batch_sizes)  # (N,): each row's step
    rows = torch.arange(len(steps)) - starts[steps]  # (N,): each row's sequence, in the packed order
    lengths = (batch_sizes.unsqueeze(1) > torch.arange(int(batch_sizes[0]))).sum(0)  # (B,): longest first
    source = starts[lengths[rows] - 1 - steps] + rows  # (N,)
    data = packed.data[source.to(packed.data.device)]  # (N, F)
    return PackedSequence(data, batch_sizes, packed.sorted_indices, packed.unsorted_indices)


class SeparateDirectionsLSTM(nn.Module):
    """Two unidirectional ``nn.LSTM`` stacks, called like a bidirectional batch-first ``nn.LSTM`` on a packed
    sequence, with its results laid out the same way:

    - ``outputs``: packed, (N, 2*P): the forward stack's last layer ++ the backward stack's, at each token;
    - ``h_n``: (L*2, B, P) and ``c_n``: (L*2, B, H), index ``layer * 2 + direction``; the backward stack's
      final state is the one at the true first token.

    ``dropout`` acts between the layers of each stack, as in ``nn.LSTM``.
    """

    bidirectional = True
    batch_first = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 proj_size: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.num_layers = num_layers
        self.forward_stack, self.backward_stack = (
            nn.LSTM(input_size, hidden_size, num_layers, dropout=dropout, proj_size=proj_size, batch_first=True)
            for _ in range(2)
        )

    def flatten_parameters(self) -> None:
        for stack in (self.forward_stack, self.backward_stack):
            if isinstance(stack, nn.LSTM):  # not once dynamically quantised
                stack.flatten_parameters()

    def forward(self, packed: PackedSequence) -> tuple[PackedSequence, tuple[Tensor, Tensor]]:
        forward_outputs, (forward_h, forward_c) = self.forward_stack(packed)  # data (N, P); h (L, B, P)
        backward_outputs, (backward_h, backward_c) = self.backward_stack(reverse_packed(packed))
        outputs = torch.cat([forward_outputs.data, reverse_packed(backward_outputs).data], dim=-1)  # (N, 2*P)
        h_n = torch.stack([forward_h, backward_h], dim=1).flatten(0, 1)  # (L*2, B, P)
        c_n = torch.stack([forward_c, backward_c], dim=1).flatten(0, 1)  # (L*2, B, H)
        return PackedSequence(outputs, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), (h_n, c_n)
