"""Small building blocks of the encoder's input side: character CNN, locked dropout, word dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CharCNN(nn.Module):
    """A word's characters -> one vector: embedding -> Conv1d -> max over the word (Ma & Hovy, 2016).

    Input: char ids (B, T, W), 0 = padding. Output: (B, T, ``channels``).
    """

    def __init__(self, num_chars: int, embedding_dim: int = 30, channels: int = 50, kernel_size: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        self.conv = nn.Conv1d(embedding_dim, channels, kernel_size, padding=kernel_size // 2)
        self.output_size = channels

    def forward(self, char_ids: Tensor) -> Tensor:
        batch_size, max_len, word_len = char_ids.shape
        words = char_ids.view(-1, word_len)  # (B*T, W)
        real = words[:, 0] != 0  # (B*T,) padding words have no characters
        # each distinct word of the batch goes through the CNN once (about half its tokens in UD-EWT's batches)
        distinct, occurrence = torch.unique(words[real], dim=0, return_inverse=True)  # (N, W) of the R real, (R,)
        chars = self.embedding(distinct)  # (N, W, C)
        features = self.conv(chars.transpose(1, 2))  # (N, F, W)
        padding = (distinct == 0).unsqueeze(1)  # (N, 1, W)
        features = features.masked_fill(padding, float("-inf")).amax(-1)  # (N, F)
        out = features.new_zeros(batch_size * max_len, self.output_size)  # (B*T, F), padding words: 0
        out[real] = features[occurrence]  # (R, F) into the real words' rows
        return out.view(batch_size, max_len, -1)  # (B, T, F)


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
