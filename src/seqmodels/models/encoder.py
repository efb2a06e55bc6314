"""The LSTM encoder shared by every model: token ids in, per-token states and a sentence vector out.

Shapes, with B = batch, T = padded length, E = embedding size, L = layers, D = 2 if bidirectional
else 1, H = hidden size, P = ``proj_size`` or H:

- ``outputs``: (B, T, D*P), the last layer's state at every time step; zero at padded positions.
- ``final``:   (B, D*P), the last layer's final forward state, concatenated with its final backward
  state, which is the one computed *from the true first token*, not from the padding. In ``nn.LSTM``'s
  terms: ``h_n``'s last layer, ``h_n.view(L, D, B, P)[-1]``, taken per sentence at its true length.

An example's results never depend on how much padding its batch has: the LSTM runs on packed sequences
(``kernel="packed"``, what cuDNN takes), or on the padded batch with each sentence's backward direction
reversed within its length (``kernel="masked"``, :mod:`~seqmodels.models.masked_lstm`: what the CPU's
fast kernels take). Both give the same results, up to float rounding. ``"auto"`` picks the second on the CPU for
batches that are mostly words (length-bucketed ones), the first elsewhere (:meth:`LSTMEncoder.runs_masked`).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypedDict, get_args

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqmodels.checkpoints import current_name
from seqmodels.models.layers import CharCNN, CharEncoder, CharLSTM, LockedDropout, word_dropout
from seqmodels.models.masked_lstm import maskable, masked_lstm
from seqmodels.models.separate_directions import SeparateDirectionsLSTM


CharEncoderName = Literal["cnn", "lstm"]  # how a word's characters become its vector (models.layers)
Kernel = Literal["auto", "packed", "masked"]  # how the LSTM skips padding (module docstring)
# "auto" runs packed a batch with more padding (masked computes every padded step) or fewer steps (oneDNN's set-up
# per call outweighs its gain below about 8 steps: benchmarks/README.md).
MASKED_MAX_PADDING, MASKED_MIN_STEPS = 0.25, 8


class EncoderConfig(TypedDict, total=False):
    """The encoder's settings, as they appear under ``model.encoder`` in the configs (see :class:`LSTMEncoder`)."""

    embedding_dim: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    separate_directions: bool
    dropout: float
    proj_size: int
    char_encoder: CharEncoderName
    char_embedding_dim: int
    char_channels: int
    char_kernel_size: int
    case_embedding_dim: int
    word_dropout: float
    locked_dropout: bool
    freeze_embeddings: bool
    kernel: Kernel


class EncoderOutput(NamedTuple):
    """What :class:`LSTMEncoder` returns; see the module docstring for the shapes."""

    outputs: Tensor  # (B, T, D*P)
    final: Tensor  # (B, D*P)


class LSTMEncoder(nn.Module):
    """Token features -> dropout -> packed multi-layer LSTM (``batch_first=True``).

    The LSTM's input at each token (:meth:`embed`) is the word embedding, concatenated with a
    vector from its characters when ``num_chars`` > 0 and a case embedding when ``num_cases`` > 0.

    Args:
        vocab_size, embedding_dim, padding_idx: the word embedding table.
        hidden_size, num_layers, bidirectional, proj_size: passed to ``nn.LSTM``.
        separate_directions: a bidirectional encoder built from two unidirectional stacks whose directions
            never mix (:class:`~seqmodels.models.separate_directions.SeparateDirectionsLSTM`, ELMo-style): a
            language model stays valid at any depth. Default: ``nn.LSTM``'s, whose layers mix them.
        dropout: on the LSTM's input and between LSTM layers.
        num_chars, char_encoder, char_embedding_dim, char_channels, char_kernel_size: the characters' vector (0
            chars: none), from a CNN with ``char_channels`` filters or a BiLSTM of ``char_channels`` / 2 per direction.
        num_cases, case_embedding_dim: the case feature for lower-cased lookups (0 cases: none).
        word_dropout: in training, the chance that a token is replaced by ``unk_idx``.
        locked_dropout: one dropout mask per sentence on the LSTM's input, instead of one per token.
        pretrained: (vocab_size, embedding_dim) initial word vectors; ``freeze_embeddings`` keeps them fixed.
        kernel: how the LSTM skips padding (module docstring): ``"auto"``, ``"packed"`` or ``"masked"``.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 100,
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        separate_directions: bool = False,
        dropout: float = 0.0,
        padding_idx: int = 0,
        proj_size: int = 0,
        num_chars: int = 0,
        char_encoder: CharEncoderName = "cnn",
        char_embedding_dim: int = 30,
        char_channels: int = 50,
        char_kernel_size: int = 3,
        num_cases: int = 0,
        case_embedding_dim: int = 8,
        word_dropout: float = 0.0,
        unk_idx: int = 1,
        locked_dropout: bool = False,
        pretrained: Tensor | None = None,
        freeze_embeddings: bool = False,
        kernel: Kernel = "auto",
    ) -> None:
        super().__init__()
        for option, value, allowed in (("kernel", kernel, Kernel), ("char_encoder", char_encoder, CharEncoderName)):
            if value not in get_args(allowed):
                raise ValueError(f"model.encoder.{option} must be one of {get_args(allowed)}, got {value!r}")
        self.padding_idx, self.unk_idx, self.word_dropout, self.kernel = padding_idx, unk_idx, word_dropout, kernel
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if pretrained is not None:
            self.embedding.weight.data.copy_(pretrained)
        self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.chars: CharEncoder | None = None  # a vector per word from its characters
        if num_chars and char_encoder == "lstm":
            self.chars = CharLSTM(num_chars, char_embedding_dim, char_channels)
        elif num_chars:
            self.chars = CharCNN(num_chars, char_embedding_dim, char_channels, char_kernel_size)
        self.case_embedding = nn.Embedding(num_cases, case_embedding_dim, padding_idx=0) if num_cases else None
        input_size = embedding_dim + (char_channels if num_chars else 0) + (case_embedding_dim if num_cases else 0)
        self.input_dropout = LockedDropout(dropout) if locked_dropout else nn.Dropout(dropout)
        if separate_directions and not bidirectional:
            raise ValueError("model.encoder.separate_directions needs bidirectional: true")
        between_layers = dropout if num_layers > 1 else 0.0
        self.lstm: nn.LSTM | SeparateDirectionsLSTM = (
            SeparateDirectionsLSTM(input_size, hidden_size, num_layers, between_layers, proj_size)
            if separate_directions
            else nn.LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=between_layers,
                         proj_size=proj_size, batch_first=True)  # fmt: skip
        )
        self.num_directions = 2 if bidirectional else 1
        # Whether a last-layer state at t has read words on both sides of t (what a language model must not see).
        self.directions_mix = bidirectional and num_layers > 1 and not separate_directions
        self.output_size = self.num_directions * (proj_size or hidden_size)

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """Weights saved under an earlier release's names load too (``seqmodels.checkpoints.RENAMED``): every
        ``load_state_dict`` passes here, Lightning's resume and its weight average's included."""
        for key in [key for key in state_dict if key.startswith(prefix)]:
            renamed = prefix + current_name(key.removeprefix(prefix))
            if renamed != key:
                state_dict[renamed] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def embed(self, token_ids: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None) -> Tensor:
        """Token ids (B, T), char ids (B, T, W), case ids (B, T) -> the LSTM's input (B, T, E')."""
        if self.training and self.word_dropout > 0:
            token_ids = word_dropout(token_ids, self.word_dropout, self.unk_idx, self.padding_idx)
        parts = [self.embedding(token_ids)]  # (B, T, E)
        if self.chars is not None:
            parts.append(self.chars(char_ids))  # (B, T, F)
        if self.case_embedding is not None:
            parts.append(self.case_embedding(case_ids))  # (B, T, C)
        return self.input_dropout(torch.cat(parts, dim=-1))  # (B, T, E')

    def forward(
        self, token_ids: Tensor, lengths: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None
    ) -> EncoderOutput:
        """Encode a padded batch: ``token_ids`` (B, T) long, ``lengths`` (B,) long, each in 1..T."""
        batch_size, max_len = token_ids.shape
        check_lengths(lengths, max_len)
        embedded = self.embed(token_ids, char_ids, case_ids)  # (B, T, E')
        if self.runs_masked(embedded, lengths):
            return EncoderOutput(*masked_lstm(self.lstm, embedded, lengths))  # (B, T, D*P), (B, D*P)
        # cuDNN wants the weights in one contiguous chunk; anything that swaps the weight tensors (DataParallel
        # replicas, load_state_dict(assign=True)) breaks it. No-op when they already are, and on the CPU; a
        # dynamically quantised LSTM (int8 inference) has no such chunk.
        if hasattr(self.lstm, "flatten_parameters"):
            self.lstm.flatten_parameters()
        # Packing needs the lengths on the CPU; keeping them there avoids a device sync.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, (h_n, _) = self.lstm(packed)  # h_n: (L*D, B, P), layer-major, whatever batch_first says
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=max_len)  # (B, T, D*P)
        last_layer = h_n.view(self.lstm.num_layers, self.num_directions, batch_size, -1)[-1]  # (D, B, P)
        final = last_layer.transpose(0, 1).reshape(batch_size, self.output_size)  # (B, D*P)
        return EncoderOutput(outputs, final)

    def runs_masked(self, embedded: Tensor, lengths: Tensor) -> bool:
        """Whether this batch runs on the padded batch (:mod:`~seqmodels.models.masked_lstm`) or packed. ``auto``:
        masked where oneDNN's kernels run (the CPU, no projection) on a batch of 8 steps or more that is mostly
        words, as length-bucketed batches and sorted prediction batches are; packed elsewhere."""
        if self.kernel == "masked" and not maskable(self.lstm):
            raise ValueError(f"model.encoder.kernel masked runs batch-first nn.LSTM only, not {type(self.lstm)}")
        if self.kernel != "auto":
            return self.kernel == "masked"
        if not (embedded.is_cpu and maskable(self.lstm) and not self.lstm.proj_size):
            return False
        if embedded.size(1) < MASKED_MIN_STEPS:
            return False
        padding = 1 - float(lengths.sum()) / max(lengths.numel() * embedded.size(1), 1)
        return padding <= MASKED_MAX_PADDING


def check_lengths(lengths: Tensor, max_len: int) -> None:
    """Fail with a clear message on lengths that packing cannot honour."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if lengths.numel() and int(lengths.min()) < 1:
        rows = torch.nonzero(lengths < 1).flatten().tolist()
        raise ValueError(f"every sequence needs at least one token; rows {rows} have length 0")
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds the padded length T={max_len}")
