"""What a head learns from, as the data path sees it: a corpus column, and how its values become padded targets.

Each head of the model declares one :class:`Field` (the CLI passes them to the data module as ``data.fields``).
The data module reads, builds vocabularies, encodes and pads by looping over the fields, and never names a task:
a new annotation column needs a head that declares it, and nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seqmodels.data.readers.conll import attributes
from seqmodels.data.vocab import UNK, Vocabulary
from seqmodels.padding import IGNORE_INDEX

if TYPE_CHECKING:
    from seqmodels.data.corpus import Corpus

MISSING = "_"  # CoNLL's empty value: a column that holds only this has no annotation


class FieldError(ValueError):
    """A column a head needs is missing, empty or holds values it cannot encode."""


@dataclass(frozen=True)
class Field:
    """One head's targets.

    Args:
        name: the head's name: a batch holds its targets as ``batch["targets"][name]``, and its classes are the
            vocabulary of that name.
        column: the corpus column it reads (``tags``, ``label``, ``upos``, ``feats``, ``deprel``, ...; a CoNLL-U
            ``feats:KEY``/``misc:KEY`` reads one attribute of that column); None: the tokens themselves.
        level: ``token`` (a value per token, padded with ``IGNORE_INDEX``/NaN) or ``sentence`` (one per sentence).
        kind: ``classes`` (ids in a vocabulary built on the training split) or ``number`` (a float).
        unseen: a class the training split never had, found at evaluation: ``error`` stops with the values
            listed; ``unknown`` reads it as ``<unk>``, a class the head never predicts (so it counts as an error).
    """

    name: str
    column: str | None
    level: Literal["token", "sentence"] = "token"
    kind: Literal["classes", "number"] = "classes"
    unseen: Literal["error", "unknown"] = "error"

    @property
    def source(self) -> str | None:
        """The column as the reader names it (``feats`` for ``feats:Tense``)."""
        return None if self.column is None else self.column.partition(":")[0]

    def values(self, column: Sequence[Any]) -> list[Any]:
        """The field's raw values from its source column (an attribute's value, ``_`` when a word has none)."""
        _, _, key = (self.column or "").partition(":")
        if not key:
            return list(column)
        return [[attributes(value).get(key, MISSING) for value in sentence] for sentence in column]

    def classes(self, train: Sequence[Any]) -> Vocabulary:
        """The class vocabulary of the training split's values (sorted; ``<unk>`` last with ``unseen: unknown``)."""
        found = Vocabulary.for_labels(value for item in train for value in (item if self.level == "token" else [item]))
        return Vocabulary([*found.itos, UNK], unk=UNK) if self.unseen == "unknown" else found

    def training_classes(self, train: Sequence[Any], corpus: Corpus) -> Vocabulary:
        """:meth:`classes` of ``corpus``'s training split, which must have two or more: from one, a head has nothing to
        learn (and its metrics cannot be built)."""
        classes = self.classes(train)
        if len(found := [value for value in classes.itos if value != UNK]) < 2:
            held_out = not corpus.val_file and corpus.format != "hub"  # a hub dataset may have its own validation
            carved = ", what is left once validation was held out of it (--data.val_file)" if held_out else ""
            raise ValueError(
                f"{corpus.file('train')}: the {self.name} head's column {self.column!r} has one class in the training "
                f"split{carved} ({found[0]!r}); a head needs two or more to learn to tell them apart"
            )
        return classes

    def encode(self, values: list[Any], classes: Vocabulary | None) -> list[Any]:
        """A batch of raw values as ids or floats (``datasets.map``'s batched form)."""
        if self.kind == "number":
            return [[number(v) for v in item] if self.level == "token" else number(item) for item in values]
        assert classes is not None
        return [classes.encode(item) if self.level == "token" else classes.encode([item])[0] for item in values]

    def pad(self, targets: list[Any]) -> Tensor:
        """Targets of a batch as one tensor: (B, T) per token, padded with ``IGNORE_INDEX`` (NaN for numbers);
        (B,) per sentence."""
        dtype = torch.float if self.kind == "number" else torch.long
        if self.level == "sentence":
            return torch.tensor(targets, dtype=dtype)  # (B,)
        padding = math.nan if self.kind == "number" else IGNORE_INDEX
        rows = [torch.as_tensor(row, dtype=dtype) for row in targets]
        return pad_sequence(rows, batch_first=True, padding_value=padding)  # (B, T)


def number(value: Any) -> float:
    """A regression target as a finite float (NaN pads a batch's token targets); a clear error for anything else."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        result = math.nan
    if not math.isfinite(result):
        raise FieldError(f"expected a finite number, found {value!r}")
    return result



# Without the model's fields (a data module used alone): the annotations the readers name ``tags`` and ``label``
# feed heads named as the built-in ``model.tagger`` and ``model.classifier`` are.
DEFAULT_FIELDS = (Field("tagger", "tags", "token"), Field("classifier", "label", "sentence"))
