"""The classifier: one label per sentence (sentiment), from the encoder's ``final`` states.

``final`` is the last layer's forward state at each sentence's true last token, concatenated with its
backward state at the true first token. Everything about classifying is here: the head (a linear layer,
or an MLP), cross-entropy, decoding to a label with every label's probability, and its report.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqmodels.models.encoder import EncoderOutput
from seqmodels.models.heads import register_head
from seqmodels.models.heads.base import TaskHead, checked_smoothing


class ClassifierConfig(TypedDict, total=False):
    """``model.classifier`` in the configs; ``mlp_size`` > 0 adds a hidden layer of that size (an MLP head).
    ``hidden_size`` is its old name (before 0.3.0), read with a deprecation warning. ``unseen`` and
    ``label_smoothing``: as the tagger's."""

    dropout: float
    mlp_size: int
    loss_weight: float
    hidden_size: int
    unseen: Literal["error", "unknown"]
    label_smoothing: float


@register_head
class ClassificationHead(TaskHead):
    """``final`` (B, D*H) -> dropout -> [Linear -> ReLU -> dropout] -> Linear -> scores (B, K)."""

    name = "classifier"
    reads = "final"
    column = "label"
    vocab_name = "labels"  # 0.3's name of its classes
    export_axes = {0: "B"}
    score_axes = "B, K={1}: a score per class"
    fields = ("label", "label_probs")
    conllu = "comment"

    def __init__(
        self,
        input_size: int,
        classes: list[str],
        dropout: float = 0.5,
        mlp_size: int = 0,
        loss_weight: float = 1.0,
        hidden_size: int | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(classes, loss_weight)
        self.label_smoothing = checked_smoothing(label_smoothing)
        if hidden_size is not None:
            message = "model.classifier.hidden_size is now model.classifier.mlp_size"
            warnings.warn(message, DeprecationWarning, stacklevel=3)
            mlp_size = hidden_size
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if mlp_size > 0:
            layers += [nn.Linear(input_size, mlp_size), nn.ReLU(), nn.Dropout(dropout)]
            input_size = mlp_size
        layers.append(nn.Linear(input_size, len(classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.final)  # (B, K)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(scores, targets, label_smoothing=self.label_smoothing if self.training else 0.0)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        return scores.argmax(-1)  # (B,)

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """``label`` and ``label_probs`` (every label's softmax probability)."""
        return [self._fields(probs) for probs in scores.softmax(-1).float().cpu()]  # (K,) each

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """The chunks' label probabilities averaged, weighted by the chunks' lengths, and their argmax."""
        probs = torch.tensor([[part[self.fields[1]][label] for label in self.classes] for part in parts])  # (N, K)
        weights = torch.tensor(lengths, dtype=probs.dtype)  # (N,)
        return self._fields(weights @ probs / weights.sum())

    def _fields(self, probs: Tensor) -> dict[str, Any]:
        label, label_probs = self.fields
        return {
            label: self.classes[int(probs.argmax())],
            label_probs: {name: round(p, 6) for name, p in zip(self.classes, probs.tolist())},
        }

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor) -> str:
        """``gold: X, predicted: Y (p=0.93)``, with a mark when they differ."""
        right, label = self.classes[int(gold)], self.classes[int(predicted)]
        mark = "" if label == right else " **✗**"
        return f"gold: {right}, predicted: {label} (p={float(probs[int(predicted)]):.2f}){mark}"

    def positive_scores(self, probs: Tensor) -> Tensor | None:
        """For two classes, the second one's probability (a precision-recall curve)."""
        return probs[:, 1] if len(self.classes) == 2 else None
