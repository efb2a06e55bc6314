"""Task heads: small modules that turn the encoder's output into scores, a loss and predictions for one task.

Targets are ``IGNORE_INDEX`` at padded positions, and every loss and prediction leaves those out.
"""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.data.batching import IGNORE_INDEX
from seqmodels.encoder import EncoderOutput
from seqmodels.models.crf import CRF, bio_allowed_transitions


class TaggerConfig(TypedDict, total=False):
    """``model.tagger`` in the configs; ``crf`` replaces per-token softmax by a linear-chain CRF."""

    dropout: float
    loss_weight: float
    crf: bool


class ClassifierConfig(TypedDict, total=False):
    """``model.classifier`` in the configs; ``hidden_size`` > 0 adds a hidden layer (an MLP head)."""

    dropout: float
    hidden_size: int
    loss_weight: float


def is_bio(tags: list[str]) -> bool:
    """Whether a tag set is BIO (IOB2): every tag is ``O``, ``B-X`` or ``I-X``."""
    return all(tag == "O" or tag.startswith(("B-", "I-")) for tag in tags)


def token_mask(lengths: Tensor, max_len: int, device: torch.device) -> Tensor:
    """(B,) lengths -> (B, T) bool, True at real tokens."""
    return torch.arange(max_len, device=device) < lengths.to(device)[:, None]


class TaggingHead(nn.Module):
    """One tag per token, from the encoder's ``outputs``: dropout -> Linear(D*H -> tags) [-> CRF].

    With ``crf=True`` and a BIO tag set, the CRF forbids ill-formed sequences (``O`` then ``I-X``).
    """

    target_key = "tag_ids"

    def __init__(self, input_size: int, tags: list[str], dropout: float = 0.5, crf: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_size, len(tags)))
        constraints = bio_allowed_transitions(tags) if is_bio(tags) else None
        self.crf = CRF(len(tags), constraints) if crf else None

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.outputs)  # (B, T, tags)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over real tokens, or the CRF's mean negative log-likelihood per sentence."""
        if self.crf is not None:
            return self.crf(scores, targets, targets != IGNORE_INDEX)
        return F.cross_entropy(scores.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        """Tag ids (B, T): the CRF's Viterbi path, or each token's argmax; ``IGNORE_INDEX`` at padding."""
        mask = token_mask(lengths, scores.size(1), scores.device)  # (B, T)
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        return scores.argmax(-1).masked_fill(~mask, IGNORE_INDEX)  # (B, T)


class ClassificationHead(nn.Module):
    """One label per sentence, from the encoder's ``final`` states: dropout -> [Linear -> ReLU -> dropout] -> Linear."""

    target_key = "label_ids"

    def __init__(self, input_size: int, labels: list[str], dropout: float = 0.5, hidden_size: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_size > 0:
            layers += [nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            input_size = hidden_size
        layers.append(nn.Linear(input_size, len(labels)))
        self.net = nn.Sequential(*layers)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.final)  # (B, classes)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(scores, targets)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        return scores.argmax(-1)  # (B,)
