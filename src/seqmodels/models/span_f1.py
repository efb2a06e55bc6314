"""Span (chunk) precision, recall and F1 for BIO-tagged sequences, as seqeval computes them by default.

A span is a maximal run of tokens of one type that starts at a ``B-X``, or at an ``I-X`` that does
not continue a span of type X (after ``O``, at a sentence start, or after another type: seqeval's
and conlleval's lenient reading). A predicted span counts as correct when a gold span has exactly
the same start, end and type. The scores are micro-averaged over all spans.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from seqmodels.padding import IGNORE_INDEX

OUTSIDE, BEGIN, INSIDE = 0, 1, 2  # tag prefixes: O, B-, I-


class SpanF1(Metric):
    """Span precision, recall and F1, equal to seqeval's ``precision_score`` / ``recall_score`` / ``f1_score``.

    Args:
        tags: the tag strings (index = id): ``O``, ``B-X`` or ``I-X``.

    :meth:`update` takes ``preds`` and ``target``, tag ids of shape (B, T), one sentence per row
    (or (N,), one sentence), where ``target`` is ``IGNORE_INDEX`` at the padding at the end of each
    row; the prediction there is ignored. The state is three counts summed across processes, so
    the scores are exact under DDP.
    """

    output_keys = ("span_precision", "span_recall", "span_f1")  # what compute() returns
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tags: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        invalid = [tag for tag in tags if tag != "O" and not tag.startswith(("B-", "I-"))]
        if invalid:
            raise ValueError(f"SpanF1 needs BIO tags (O, B-X, I-X); got {invalid}")
        types = list(dict.fromkeys(tag[2:] for tag in tags if tag != "O"))
        prefixes = [OUTSIDE if tag == "O" else BEGIN if tag[0] == "B" else INSIDE for tag in tags]
        type_ids = [-1 if tag == "O" else types.index(tag[2:]) for tag in tags]
        # Lookup tables from tag id; buffers, so that they follow the metric to the GPU.
        self.register_buffer("prefix_of", torch.tensor(prefixes), persistent=False)  # (C,)
        self.register_buffer("type_of", torch.tensor(type_ids), persistent=False)  # (C,)
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("predicted", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("gold", torch.tensor(0), dist_reduce_fx="sum")

    def _spans(self, tag_ids: Tensor, padding: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Where spans start (B, T) bool, each token's type (B, T), and for each position the end of
        the first span ending there or later (B, T): for a span's start, that is its own end."""
        tag_ids = tag_ids.masked_fill(padding, 0)  # any valid id; padding is made O just below
        prefix = self.prefix_of[tag_ids].masked_fill(padding, OUTSIDE)  # (B, T)
        span_type = self.type_of[tag_ids].masked_fill(padding, -1)  # (B, T), -1 for O
        previous_type = F.pad(span_type[:, :-1], (1, 0), value=-1)  # (B, T)
        # I-X continues the span before it only if that one is of type X; anything else ends it.
        continues = (prefix == INSIDE) & (previous_type == span_type)  # (B, T)
        is_span = prefix != OUTSIDE
        starts = is_span & ~continues
        ends = is_span & ~F.pad(continues[:, 1:], (0, 1), value=False)  # (B, T)
        positions = torch.arange(tag_ids.size(1), device=tag_ids.device).expand_as(tag_ids)  # (B, T)
        # Spans do not overlap, so the first end at or after a span's start is that span's end.
        next_end = torch.where(ends, positions, tag_ids.size(1)).flip(1).cummin(1).values.flip(1)  # (B, T)
        return starts, span_type, next_end

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Count the spans of one batch of sentences: ``preds`` and ``target`` (B, T) or (N,) tag ids."""
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
        if preds.dim() == 1:
            preds, target = preds.unsqueeze(0), target.unsqueeze(0)  # (1, N)
        padding = target == IGNORE_INDEX
        pred_starts, pred_types, pred_ends = self._spans(preds, padding)
        gold_starts, gold_types, gold_ends = self._spans(target, padding)
        same_span = pred_starts & gold_starts & (pred_types == gold_types) & (pred_ends == gold_ends)
        self.correct += same_span.sum()
        self.predicted += pred_starts.sum()
        self.gold += gold_starts.sum()

    def compute(self) -> dict[str, Tensor]:
        """``span_precision``, ``span_recall`` and ``span_f1`` as float tensors; 0 where a denominator is 0."""
        correct = self.correct.float()
        # When a count is 0, ``correct`` is 0 too, so clamping the denominator to 1 gives 0.
        return {
            "span_precision": correct / self.predicted.clamp(min=1),
            "span_recall": correct / self.gold.clamp(min=1),
            "span_f1": 2 * correct / (self.predicted + self.gold).clamp(min=1),
        }
