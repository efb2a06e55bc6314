"""The task-head contract: everything one task adds on top of the shared encoder, in one class.

A head reads one of the encoder's results (``outputs``, (B, T, D*H): a state per token; or ``final``,
(B, D*H): a state per sentence), turns it into scores, and owns all that follows from them: the loss
against its targets, the predicted ids, the decoding to JSON-ready fields, its metrics, its part of
the evaluation report, and the dynamic axes of its scores in an export. ``SequenceModel``, prediction,
the report, export and ``seqmodels-shapes`` loop over the model's heads and never name a task.

A head is configured as an instance with a name (``model.heads: {upos: {type: tagger, column: upos}}``): its
metrics (``val/upos/acc``), record fields (``"upos"``), export output and vocabulary of classes follow that name,
and its :class:`~seqmodels.data.fields.Field` tells the data path which column to read and how to encode it.
A new task is a subclass in one file under ``seqmodels/models/heads/``, registered with :func:`register_head`
(see the README, "Add a task").
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqmodels.models.encoder import EncoderOutput, LSTMEncoder
from seqmodels.padding import IGNORE_INDEX


def checked_smoothing(label_smoothing: float) -> float:
    """``label_smoothing`` of a softmax head (torch's ``cross_entropy``: the target puts that much of its mass evenly
    on every class), if it is a number in [0, 1). It smooths the training loss only: evaluation losses stay the plain
    cross-entropy, comparable between runs."""
    number = isinstance(label_smoothing, (int, float)) and not isinstance(label_smoothing, bool)
    if not (number and 0 <= label_smoothing < 1):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")  # the head is named by build_head
    return label_smoothing


class TaskHead(nn.Module):
    """One task's head. B = sentences, T = padded length, C = the head's classes.

    Class attributes each head sets:

    - ``name``: its type (``type: tagger`` in a config; the registry's key), and the name of an instance
      configured without one (``model.tagger``); an instance's ``name`` is its own;
    - ``reads``: ``"outputs"`` or ``"final"``, the encoder result it reads (a value per token, or per sentence);
    - ``column``: the corpus column it learns from by default (``"tags"``, ``"label"``; ``column:`` in its config
      picks another, e.g. ``upos``, ``feats``, ``deprel``), or None when its targets come from the batch itself;
    - ``target``: how its column's values are encoded: ``"classes"`` (a vocabulary built on the training split,
      named after the instance) or ``"number"`` (a float);
    - ``vocab_name``: a vocabulary whose strings are its classes when it reads no column (``"tokens"`` for the
      language model; for a column head, its 0.3 name, which checkpoints of 0.3 hold), or None;
    - ``export_axes``: the dynamic axes of its scores in an export (``{0: "B", 1: "T"}``);
    - ``score_axes``: what its scores' axes are, for ``seqmodels-shapes`` (formatted with the scores' shape);
    - ``fields``: the record fields :meth:`decode` writes, its prediction first, for an instance named ``name``
      (``("tags", "tag_probs", ...)``); another instance writes its own name and ``<name>_<suffix>`` for the
      others (``upos``, ``upos_probs``): every head's fields go into one record, so two heads may not share one;
    - ``conllu``: where CoNLL-U output writes its prediction (``fields[0]``): ``"column"`` (a value per word, in the
      column it came from), ``"comment"`` (``# label = ...`` before the sentence's words), or None (JSON Lines);
    - ``confusion_report``: whether the evaluation report shows its confusion matrix and per-class scores.

    Args:
        classes: the class strings (index = id).
        loss_weight: its loss's weight in the model's sum over heads.
    """

    name: ClassVar[str]
    reads: ClassVar[Literal["outputs", "final"]]
    column: ClassVar[str | None]
    vocab_name: ClassVar[str | None]
    export_axes: ClassVar[dict[int, str]]
    score_axes: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    target: ClassVar[Literal["classes", "number"]] = "classes"
    conllu: ClassVar[Literal["column", "comment"] | None] = None
    confusion_report: ClassVar[bool] = True  # a confusion matrix and per-class table (not for thousands of classes)

    def __init__(self, classes: list[str], loss_weight: float = 1.0) -> None:
        super().__init__()
        self.classes = list(classes)
        self.loss_weight = loss_weight

    @classmethod
    def record_fields(cls, name: str) -> tuple[str, ...]:
        """The record fields of the instance ``name``: ``fields``, renamed after it unless it is named as its type
        (tags, tag_probs, crf_path -> upos, upos_probs, upos_crf_path)."""
        if name == cls.name:
            return cls.fields
        first, *others = cls.fields
        stem = first.removesuffix("s") + "_"
        return (name, *(f"{name}_{other.removeprefix(stem)}" for other in others))

    def named(self, name: str, column: str | None) -> TaskHead:
        """This head as the instance ``name`` reading ``column`` (see the class attributes)."""
        self.name, self.column = name, column  # type: ignore[misc]  # per instance from here on
        self.fields = self.record_fields(name)  # type: ignore[misc]
        return self

    @classmethod
    def from_encoder(cls, encoder: LSTMEncoder, classes: list[str] | None, **config: Any) -> TaskHead:
        """The head for ``encoder``'s output size, with its classes (None: it names its own) and its
        ``model.<name>`` config."""
        return cls(encoder.output_size, classes, **config)

    def targets(self, batch: dict[str, Any]) -> Tensor | None:
        """The batch's targets for this head (``batch["targets"][name]``, padded by its field), or None when its
        corpus has none (it then adds no loss)."""
        return batch.get("targets", {}).get(self.name)

    def probabilities(self, scores: Tensor) -> Tensor | None:
        """Its class probabilities for the report (a softmax over the last axis), or None (a regression)."""
        return scores.detach().softmax(-1)

    # -- each head implements -------------------------------------------------------------------------
    def forward(self, encoded: EncoderOutput) -> Tensor:
        """The scores, e.g. (B, T, C) per token or (B, C) per sentence."""
        raise NotImplementedError

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        """A scalar, leaving out targets that are ``IGNORE_INDEX``."""
        raise NotImplementedError

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        """Predicted ids, shaped like the targets, ``IGNORE_INDEX`` at padding."""
        raise NotImplementedError

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """One dict of JSON-ready fields per sentence of the batch scored (``token_ids``, ``lengths``, ...), e.g.
        ``tags`` and ``tag_probs``: only those ``fields`` declares."""
        raise NotImplementedError

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        """One sentence's fields from those of its chunks (of ``lengths`` tokens), for sentences predicted in pieces."""
        raise NotImplementedError

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor | None) -> str:
        """One sentence's gold and predicted values as Markdown, for the report's examples ("" for none).
        ``gold``/``predicted``: the sentence's row of targets and predictions; ``probs``: its class probabilities
        (None: :meth:`probabilities` gives none)."""
        raise NotImplementedError

    # -- defaults ------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Metric]:
        """New metrics for one stage, updated with ``(predicted ids, targets)`` and logged as
        ``{stage}/{name}/{key}``: accuracy and macro F1, leaving out targets equal to ``IGNORE_INDEX``."""
        return {
            "acc": MulticlassAccuracy(len(self.classes), average="micro", ignore_index=IGNORE_INDEX),
            "f1_macro": MulticlassF1Score(len(self.classes), average="macro", ignore_index=IGNORE_INDEX),
        }

    def update_metrics(self, metrics: MetricCollection, scores: Tensor, predicted: Tensor, targets: Tensor) -> None:
        """Update this head's metrics with a batch: with the predicted ids, unless a metric needs the scores."""
        metrics.update(predicted, targets)

    def decode_state(self) -> dict[str, Tensor]:
        """The weights :meth:`decode` reads besides the scores (a CRF's transitions), keyed as in the head's
        ``state_dict``: an exported model carries them, so that a runtime decodes as the model does."""
        return {}

    def positive_scores(self, probs: Tensor) -> Tensor | None:
        """The scores of the positive class for a precision-recall curve, or None (not a binary task)."""
        return None



def markdown_escape(text: str) -> str:
    """A token escaped for Markdown (tokens such as ``*``, ``_`` or ``|`` would change the markup)."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>" else c for c in text)
