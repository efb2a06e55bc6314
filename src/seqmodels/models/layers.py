"""Small building blocks of the encoder's input side: character encoders, locked dropout, word dropout."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from seqmodels.models.masked_lstm import maskable, masked_lstm


class CharEncoder(nn.Module, ABC):
    """A word's characters -> one vector, computed once per distinct word of the batch (about half of UD-EWT's
    tokens in a batch). Subclasses say how a word's characters become its vector (:meth:`encode_words`).

    Input: char ids (B, T, W), 0 = padding, each word's characters first. Output: (B, T, ``output_size``).
    """

    def __init__(self, num_chars: int, embedding_dim: int, output_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        self.output_size = output_size

    @property
    @abstractmethod
    def description(self) -> str:
        """What the model card says of it."""

    def forward(self, char_ids: Tensor) -> Tensor:
        batch_size, max_len, word_len = char_ids.shape
        words = char_ids.view(-1, word_len)  # (B*T, W)
        real = words[:, 0] != 0  # (B*T,) padding words have no characters
        distinct, occurrence = torch.unique(words[real], dim=0, return_inverse=True)  # (N, W) of the R real, (R,)
        features = self.encode_words(distinct, self.embedding(distinct))  # (N, F)
        out = features.new_zeros(batch_size * max_len, self.output_size)  # (B*T, F), padding words: 0
        out[real] = features[occurrence]  # (R, F) into the real words' rows
        return out.view(batch_size, max_len, -1)  # (B, T, F)

    @abstractmethod
    def encode_words(self, words: Tensor, chars: Tensor) -> Tensor:
        """Distinct words' char ids (N, W), each with at least one character, and their embeddings (N, W, C) ->
        (N, F)."""


class CharCNN(CharEncoder):
    """Embedding -> Conv1d -> max over the word (Ma & Hovy, 2016); ``channels`` filters."""

    def __init__(self, num_chars: int, embedding_dim: int = 30, channels: int = 50, kernel_size: int = 3) -> None:
        super().__init__(num_chars, embedding_dim, channels)
        self.conv = nn.Conv1d(embedding_dim, channels, kernel_size, padding=kernel_size // 2)

    @property
    def description(self) -> str:
        return f"character CNN ({self.output_size} channels)"

    def encode_words(self, words: Tensor, chars: Tensor) -> Tensor:
        features = self.conv(chars.transpose(1, 2))  # (N, F, W)
        padding = (words == 0).unsqueeze(1)  # (N, 1, W)
        return features.masked_fill(padding, float("-inf")).amax(-1)  # (N, F)


class CharLSTM(CharEncoder):
    """Embedding -> one-layer BiLSTM -> its two final states, the backward one read from the word's first character
    (Plank et al., 2016; UDPipe 2 uses a GRU). ``channels`` = twice the LSTM's hidden size."""

    def __init__(self, num_chars: int, embedding_dim: int = 30, channels: int = 50) -> None:
        if channels % 2:
            raise ValueError(f"model.encoder.char_channels must be even for char_encoder lstm, got {channels}")
        super().__init__(num_chars, embedding_dim, channels)
        self.lstm = nn.LSTM(embedding_dim, channels // 2, bidirectional=True, batch_first=True)

    @property
    def description(self) -> str:
        return f"character BiLSTM ({self.output_size // 2} per direction)"

    def encode_words(self, words: Tensor, chars: Tensor) -> Tensor:
        lengths = (words != 0).sum(-1)  # (N,)
        if maskable(self.lstm):
            return masked_lstm(self.lstm, chars, lengths)[1]  # (N, F): the final states, padding never read
        # an int8 (dynamically quantised) LSTM runs packed only
        packed = pack_padded_sequence(chars, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # (2, N, F/2): forward, backward
        return h_n.transpose(0, 1).reshape(words.size(0), self.output_size)  # (N, F)


class LockedDropout(nn.Module):
    """Variational dropout: one mask per sequence, the same at every time step (Gal & Ghahramani, 2016)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - self.p) / (1 - self.p)  # (B, 1, D)
        return x * mask


def word_dropout(token_ids: Tensor, p: float, unk_id: int, padding_id: int) -> Tensor:
    """Replace each real token by ``unk_id`` with probability ``p``, so that ``<unk>`` is learned."""
    drop = torch.rand(token_ids.shape, device=token_ids.device) < p
    return token_ids.masked_fill(drop & (token_ids != padding_id), unk_id)
