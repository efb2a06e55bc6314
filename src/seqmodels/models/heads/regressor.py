"""The regressor: one number per sentence (a sentiment score, a rating), from the encoder's ``final`` states.

Everything about regression is here: a linear layer to one output, the mean squared error, Pearson's and
Spearman's correlations (torchmetrics) and the mean absolute error, and a ``score`` per sentence in predictions
(no probabilities: a regression has none).
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, Metric, MetricCollection, PearsonCorrCoef, SpearmanCorrCoef

from seqmodels.models.encoder import EncoderOutput
from seqmodels.models.heads import register_head
from seqmodels.models.heads.base import TaskHead


class RegressorConfig(TypedDict, total=False):
    """``model.heads.NAME`` with ``type: regressor``: ``column`` is the corpus's number column."""

    dropout: float
    loss_weight: float


@register_head
class RegressionHead(TaskHead):
    """``final`` (B, D*H) -> dropout -> Linear -> a score (B,)."""

    name = "regressor"
    reads = "final"
    column = "label"
    target = "number"
    vocab_name = None
    export_axes = {0: "B"}
    score_axes = "B: a score per sentence"
    fields = ("score",)
    conllu = "comment"
    confusion_report = False

    def __init__(
        self, input_size: int, classes: list[str] | None = None, dropout: float = 0.5, loss_weight: float = 1.0
    ) -> None:
        super().__init__([], loss_weight)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_size, 1))

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.final).squeeze(-1)  # (B,)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.mse_loss(scores.float(), targets)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        return scores.detach().float()  # (B,)

    def probabilities(self, scores: Tensor) -> None:
        return None

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The score of each sentence, under the head's name."""
        return [{self.fields[0]: round(score, 6)} for score in scores.float().tolist()]

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """The chunks' scores averaged, weighted by the chunks' lengths."""
        (field,) = self.fields
        return {field: round(sum(p[field] * n for p, n in zip(parts, lengths)) / sum(lengths), 6)}

    def metrics(self) -> dict[str, Metric]:
        """Pearson's and Spearman's correlations with the gold scores, and the mean absolute error."""
        return {"pearson": PearsonCorrCoef(), "spearman": SpearmanCorrCoef(), "mae": MeanAbsoluteError()}

    def update_metrics(self, metrics: MetricCollection, scores: Tensor, predicted: Tensor, targets: Tensor) -> None:
        metrics.update(predicted, targets.float())

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor | None) -> str:
        """``gold: 3.00, predicted: 2.41``."""
        return f"gold: {float(gold):.2f}, predicted: {float(predicted):.2f}"
