"""The LSTM encoder shared by every model: token ids in, per-token states and a sentence vector out.

Shapes, with B = batch, T = padded length, E = embedding size, L = layers, D = 2 if bidirectional
else 1, H = hidden size, P = ``proj_size`` or H:

- ``outputs``: (B, T, D*P), the last layer's state at every time step; zero at padded positions.
- ``final``:   (B, D*P), the last layer's final forward state, concatenated with its final backward
  state, which is the one computed *from the true first token*, not from the padding.
- ``h_n``:     (L*D, B, P), and ``c_n``: (L*D, B, H), PyTorch's raw final states, layer-major
  (index ``layer * D + direction``), whatever ``batch_first`` says.

Sequences are packed, so an example's results never depend on how much padding its batch has.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class EncoderConfig(TypedDict, total=False):
    """The encoder's tunable sizes, as they appear under ``model.encoder`` in the configs."""

    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    proj_size: int


class EncoderOutput(NamedTuple):
    """What :class:`LSTMEncoder` returns; see the module docstring for the shapes."""

    outputs: Tensor  # (B, T, D*P)
    final: Tensor  # (B, D*P)
    h_n: Tensor  # (L*D, B, P)
    c_n: Tensor  # (L*D, B, H)


class LSTMEncoder(nn.Module):
    """Embedding -> dropout -> packed multi-layer LSTM (``batch_first=True``).

    ``dropout`` applies to the embeddings and between LSTM layers. The input side is
    :meth:`embed`, the one place to add character features or pretrained vectors.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 100,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        self.padding_idx = padding_idx
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.embedding_dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            input_size=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
            proj_size=proj_size,
            batch_first=True,
        )
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * (proj_size or hidden_size)

    def embed(self, token_ids: Tensor) -> Tensor:
        """Token ids (B, T) -> the LSTM's input (B, T, E)."""
        return self.embedding_dropout(self.embedding(token_ids))

    def forward(self, token_ids: Tensor, lengths: Tensor) -> EncoderOutput:
        """Encode a padded batch: ``token_ids`` (B, T) long, ``lengths`` (B,) long, each in 1..T."""
        batch_size, max_len = token_ids.shape
        check_lengths(lengths, max_len)
        embedded = self.embed(token_ids)  # (B, T, E)
        # Packing needs the lengths on the CPU; keeping them there avoids a device sync.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, (h_n, c_n) = self.lstm(packed)  # h_n: (L*D, B, P), c_n: (L*D, B, H)
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=max_len)  # (B, T, D*P)
        last_layer = h_n.view(self.lstm.num_layers, self.num_directions, batch_size, -1)[-1]  # (D, B, P)
        final = last_layer.transpose(0, 1).reshape(batch_size, self.output_size)  # (B, D*P)
        return EncoderOutput(outputs, final, h_n, c_n)


def check_lengths(lengths: Tensor, max_len: int) -> None:
    """Fail with a clear message on lengths that packing cannot honour."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 1:
        rows = torch.nonzero(lengths < 1).flatten().tolist()
        raise ValueError(f"every sequence needs at least one token; rows {rows} have length 0")
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds the padded length T={max_len}")
