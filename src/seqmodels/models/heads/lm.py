"""The language model: from the encoder's ``outputs``, each token's forward state predicts the next word and
its backward state the previous one (Rei 2017), alone or as an auxiliary loss beside other heads.

It needs only tokens, so any corpus can feed it, unlabelled text included. Its softmax covers the
``vocab_size`` most frequent training words and ``<unk>`` (the token vocabulary is sorted by frequency),
so its cost stays bounded. A state must never have read the word it predicts: the forward half of
``outputs`` at t has read tokens 0..t, the backward half t..T-1, as long as the directions have not mixed:
with one layer, a unidirectional encoder, or ``encoder.separate_directions`` (two stacks, any depth). With two
or more ``nn.LSTM`` bidirectional layers, layer 2's forward state has read token t+1 through layer 1's backward
state, so the head refuses them.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import Perplexity

from seqmodels.models.encoder import EncoderOutput, LSTMEncoder
from seqmodels.models.heads import register_head
from seqmodels.models.heads.base import TaskHead
from seqmodels.padding import IGNORE_INDEX, token_mask


class LMConfig(TypedDict, total=False):
    """``model.lm`` in the configs: ``vocab_size`` words in the softmax (plus ``<unk>``)."""

    vocab_size: int
    dropout: float
    loss_weight: float


@register_head
class LanguageModelHead(TaskHead):
    """``outputs`` (B, T, D*H) -> per direction: dropout -> Linear -> scores (B, T, D, V) for the next word
    (direction 0) and the previous word (direction 1). V = ``vocab_size`` + 1 (``<unk>``)."""

    name = "lm"
    reads = "outputs"
    column = None  # tokens only
    vocab_name = "tokens"
    export_axes = {0: "B", 1: "T"}
    score_axes = "B, T, D={2}, V={3}: the next word's scores (forward), the previous word's (backward)"
    fields = ("perplexity",)
    confusion_report = False  # thousands of classes

    def __init__(
        self,
        input_size: int,
        classes: list[str],
        directions: int = 1,
        vocab_size: int = 10_000,
        dropout: float = 0.5,
        loss_weight: float = 1.0,
    ) -> None:
        # classes: the token vocabulary, <pad> and <unk> first, then by frequency: keep <unk> and the first words.
        super().__init__([classes[1], *classes[2 : vocab_size + 2]], loss_weight)
        self.directions = directions
        self.dropout = nn.Dropout(dropout)
        self.linears = nn.ModuleList(nn.Linear(input_size // directions, len(self.classes)) for _ in range(directions))

    @classmethod
    def from_encoder(cls, encoder: LSTMEncoder, classes: list[str] | None, **config: Any) -> TaskHead:
        if encoder.directions_mix:
            raise ValueError(
                "model.lm needs directions that do not mix: with 2 or more bidirectional layers, the last layer's "
                "forward state has read the next word (through the layer below's backward state); set "
                "model.encoder.separate_directions: true, or use one layer"
            )
        return cls(encoder.output_size, classes, directions=encoder.num_directions, **config)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        halves = self.dropout(encoded.outputs).chunk(self.directions, dim=-1)  # D x (B, T, H)
        return torch.stack([linear(half) for linear, half in zip(self.linears, halves)], dim=2)  # (B, T, D, V)

    def targets(self, batch: dict[str, Any]) -> Tensor:
        """(B, T, D): the next word's class (forward), the previous word's (backward); ``IGNORE_INDEX`` where
        there is none (after the last word, before the first) and at padding."""
        token_ids, lengths = batch["token_ids"], batch["lengths"]
        real = token_mask(lengths, token_ids.size(1), token_ids.device)  # (B, T)
        words = (token_ids - 1).clamp(min=0)  # <unk> (id 1) -> class 0, the i-th word (id i + 2) -> class i + 1
        words = words.masked_fill(words >= len(self.classes), 0).masked_fill(~real, IGNORE_INDEX)  # (B, T)
        ignore = words.new_full(words[:, :1].shape, IGNORE_INDEX)  # (B, 1)
        shifted = [torch.cat([words[:, 1:], ignore], dim=1), torch.cat([ignore, words[:, :-1]], dim=1)]  # (B, T) each
        targets = torch.stack(shifted[: self.directions], dim=2)  # (B, T, D)
        return targets.masked_fill(~real[..., None], IGNORE_INDEX)  # nothing is predicted from padding

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over every word that has a neighbour to predict, both directions; zero for a batch
        of one-word sentences, which have nothing to predict (a plain mean would be 0/0 = nan)."""
        total = F.cross_entropy(scores.flatten(0, 2).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                                reduction="sum")  # fmt: skip
        return total / (targets != IGNORE_INDEX).sum().clamp(min=1)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        mask = token_mask(lengths, scores.size(1), scores.device)[..., None]  # (B, T, 1)
        return scores.argmax(-1).masked_fill(~mask, IGNORE_INDEX)  # (B, T, D)

    def metrics(self) -> dict[str, Metric]:
        """Perplexity: exp of the mean cross-entropy over the predicted words (``{stage}/lm/perplexity``)."""
        return {"perplexity": Perplexity(ignore_index=IGNORE_INDEX)}

    def update_metrics(self, metrics: MetricCollection, scores: Tensor, predicted: Tensor, targets: Tensor) -> None:
        metrics.update(scores.flatten(1, 2).float(), targets.flatten(1, 2))  # (B, T*D, V), (B, T*D)

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """``perplexity``: how surprising each sentence is to the model, next and previous words together."""
        targets = self.targets(batch)  # (B, T, D)
        nll = F.cross_entropy(scores.float().movedim(-1, 1), targets, ignore_index=IGNORE_INDEX, reduction="none")
        counts = (targets != IGNORE_INDEX).sum((1, 2))  # (B,): a one-word sentence has nothing to predict
        means = nll.sum((1, 2)) / counts.clamp(min=1)  # (B,)
        (field,) = self.fields
        return [{field: round(math.exp(m), 4) if c else None} for m, c in zip(means.tolist(), counts.tolist())]

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """The chunks' perplexities combined as one: the exponential of their length-weighted mean log."""
        (field,) = self.fields
        known = [(math.log(p[field]), n) for p, n in zip(parts, lengths) if p[field] is not None]
        total = sum(n for _, n in known)
        return {field: round(math.exp(sum(log * n for log, n in known) / total), 4) if total else None}

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor) -> str:
        return ""  # a perplexity says little about one sentence
