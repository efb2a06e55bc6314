"""The tagger: one tag per token (part of speech, chunks, named entities), from the encoder's ``outputs``.

Everything about tagging is here: per-token scores, the loss (cross-entropy over real tokens, or a
linear-chain CRF), decoding (argmax with each tag's probability, or the CRF's Viterbi path), accuracy,
macro F1 and, for BIO tag sets, span F1, and how an example sentence shows its errors.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from seqmodels.models.crf import CRF, bio_allowed_transitions
from seqmodels.models.encoder import EncoderOutput
from seqmodels.models.heads import register_head
from seqmodels.models.heads.base import TaskHead, checked_smoothing, markdown_escape
from seqmodels.models.span_f1 import SpanF1
from seqmodels.padding import IGNORE_INDEX, token_mask


class TaggerConfig(TypedDict, total=False):
    """``model.tagger`` in the configs; ``crf`` replaces the per-token softmax by a linear-chain CRF; ``unseen``
    (``error`` or ``unknown``): what a tag the training split never had does at evaluation (``Field.unseen``);
    ``label_smoothing``: the softmax's targets smoothed by that much (UDPipe 2 takes 0.03; not with ``crf``)."""

    dropout: float
    loss_weight: float
    crf: bool
    unseen: Literal["error", "unknown"]
    label_smoothing: float


def is_bio(tags: list[str]) -> bool:
    """Whether a tag set is BIO (IOB2): every tag is ``O``, ``B-X`` or ``I-X``."""
    return all(tag == "O" or tag.startswith(("B-", "I-")) for tag in tags)


@register_head
class TaggingHead(TaskHead):
    """``outputs`` (B, T, D*H) -> dropout -> Linear -> scores (B, T, C) [-> CRF].

    With ``crf=True`` and a BIO tag set, the CRF forbids ill-formed sequences (``O`` then ``I-X``).
    """

    name = "tagger"
    reads = "outputs"
    column = "tags"
    vocab_name = "tags"  # 0.3's name of its classes
    export_axes = {0: "B", 1: "T"}
    score_axes = "B, T, C={2}: a score per tag per token"
    fields = ("tags", "tag_probs", "crf_path")
    conllu = "column"

    def __init__(
        self,
        input_size: int,
        classes: list[str],
        dropout: float = 0.5,
        crf: bool = False,
        loss_weight: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(classes, loss_weight)
        if crf and label_smoothing:
            raise ValueError(f"label_smoothing ({label_smoothing}) smooths a softmax's targets and a tagger with crf: "
                             f"true has none: give it label_smoothing: 0 as well")  # fmt: skip
        self.label_smoothing = checked_smoothing(label_smoothing)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_size, len(classes)))
        constraints = bio_allowed_transitions(classes) if is_bio(classes) else None
        self.crf = CRF(len(classes), constraints) if crf else None

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.outputs)  # (B, T, C)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy over real tokens (in training, targets smoothed by ``label_smoothing``), or the CRF's
        mean negative log-likelihood per sentence."""
        if self.crf is not None:
            return self.crf(scores, targets, targets != IGNORE_INDEX)
        smoothing = self.label_smoothing if self.training else 0.0
        flat_scores, flat_targets = scores.flatten(0, 1), targets.flatten()  # (B*T, C), (B*T,)
        return F.cross_entropy(flat_scores, flat_targets, ignore_index=IGNORE_INDEX, label_smoothing=smoothing)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        """Tag ids (B, T): the CRF's Viterbi path, or each token's argmax; ``IGNORE_INDEX`` at padding."""
        mask = token_mask(lengths, scores.size(1), scores.device)  # (B, T)
        if self.crf is not None:
            return self.crf.decode(scores, mask)
        return scores.argmax(-1).masked_fill(~mask, IGNORE_INDEX)  # (B, T)

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """``tags``, with ``tag_probs`` (each chosen tag's softmax probability) or ``crf_path: true`` (a Viterbi
        path has no per-token probability)."""
        lengths = batch["lengths"]
        tag_ids = self.predict(scores, lengths)  # (B, T)
        sentences = [ids[:n] for ids, n in zip(tag_ids.tolist(), lengths.tolist())]
        tags, probs_field, crf_path = self.fields
        if self.crf is not None:
            return [{tags: [self.classes[i] for i in ids], crf_path: True} for ids in sentences]
        chosen = scores.softmax(-1).gather(-1, tag_ids.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
        return [
            {tags: [self.classes[i] for i in ids], probs_field: [round(p, 6) for p in probs[: len(ids)]]}
            for ids, probs in zip(sentences, chosen.tolist())
        ]

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """The chunks' tags (and probabilities) one after the other."""
        tags, probs, crf_path = self.fields
        merged = {key: [value for part in parts for value in part[key]] for key in (tags, probs) if key in parts[0]}
        return merged | ({crf_path: True} if crf_path in parts[0] else {})

    def decode_state(self) -> dict[str, Tensor]:
        """The CRF's start, transition and end scores (Viterbi decoding runs outside an exported graph)."""
        return {f"crf.{key}": value for key, value in self.crf.state_dict().items()} if self.crf is not None else {}

    def metrics(self) -> dict[str, Metric]:
        """Accuracy and macro F1 over real tokens, and for BIO tags span precision, recall and F1 (seqeval's)."""
        return super().metrics() | ({"span": SpanF1(self.classes)} if is_bio(self.classes) else {})

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor) -> str:
        """``word/TAG`` per token; an error as ``**word/GOLD→PREDICTED**``."""
        pairs = zip(tokens, (self.classes[i] for i in gold.tolist()), (self.classes[i] for i in predicted.tolist()))
        return " ".join(
            f"{markdown_escape(token)}/{tag}" if tag == right else f"**{markdown_escape(token)}/{right}→{tag}**"
            for token, right, tag in pairs
        )
