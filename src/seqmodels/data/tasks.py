"""Which corpus feeds which head, and the columns it feeds them, checked before anything trains.

A head learns from one column (:class:`~seqmodels.data.fields.Field`) or from the tokens alone (a language
model). A corpus feeds the heads its ``heads`` option names, or by default every head whose column it has.
Each head with a column is fed by exactly one corpus; a head that needs only tokens can learn from several.
Every mistake ends in one line naming the corpus (or file) and the head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datasets import Dataset

from seqmodels.data.fields import DEFAULT_FIELDS, MISSING, Field, FieldError
from seqmodels.data.readers.common import ReaderOptions


def default_fields(columns: set[str]) -> dict[str, Field]:
    """The default fields of the columns a corpus has."""
    return {field.name: field for field in DEFAULT_FIELDS if field.column in columns}


def assign_heads(
    columns: Mapping[str, set[str]], chosen: Mapping[str, Sequence[str] | None], fields: Mapping[str, Field]
) -> dict[str, tuple[str, ...]]:
    """Each corpus's heads. ``columns``: each corpus's annotation columns; ``chosen``: its ``heads`` option (None:
    every head whose column it has); ``fields``: what the model's heads read, by head name."""
    fed: dict[str, tuple[str, ...]] = {}
    for corpus, heads in chosen.items():
        if heads is None:  # what its annotations allow
            heads = [name for name, field in fields.items() if field.source is None or field.source in columns[corpus]]
        for name in heads:
            if name not in fields:
                raise ValueError(f"corpus '{corpus}' feeds the {name} head, which the model does not have "
                                 f"({list(fields)})")  # fmt: skip
            source = fields[name].source
            if source is not None and source not in columns[corpus]:
                has = ", ".join(sorted(columns[corpus])) or "tokens only"
                raise ValueError(
                    f"corpus '{corpus}' cannot feed the {name} head: it reads the column '{source}', and the corpus "
                    f"has {has}"
                )
        fed[corpus] = tuple(heads)
    for name, field in fields.items():
        feeders = [corpus for corpus, heads in fed.items() if name in heads]
        if not feeders:
            has = "; ".join(f"'{corpus}' has {', '.join(sorted(columns[corpus])) or 'tokens only'}" for corpus in fed)
            raise ValueError(f"the {name} head has no corpus: it reads the column '{field.column}', and no corpus "
                             f"feeds it ({has})")  # fmt: skip
        if len(feeders) > 1 and field.column is not None:
            raise ValueError(
                f"the {name} head is fed by two corpora ({', '.join(feeders)}); one head learns from one corpus: "
                "say which under data.corpora.NAME.heads"
            )
    return fed


def fed_columns(split: Dataset, fields: Sequence[Field], where: str) -> Dataset:
    """``split`` as ``tokens`` and a column per field with a column, named after its head, holding the values it
    reads; a column that is all ``_`` (no annotation) and a value a number field cannot read stop here."""
    columns = [field for field in fields if field.column is not None]
    for field in columns:
        if not any(value != MISSING for item in field.values(split[field.source]) for value in
                   (item if field.level == "token" else [item])):  # fmt: skip
            raise FieldError(f"{where}: the {field.name} head reads the column '{field.column}', which holds only "
                             f"'{MISSING}' (no annotation)")  # fmt: skip

    def select(batch: dict[str, list]) -> dict[str, list]:
        selected = {"tokens": batch["tokens"]}
        for field in columns:
            selected[field.name] = field.values(batch[field.source])
            if field.kind == "number":  # named by its words: a carved validation split is in another order
                for tokens, item in zip(batch["tokens"], selected[field.name]):
                    try:
                        field.encode([item], None)
                    except FieldError as error:
                        sentence = " ".join(tokens)
                        sentence = sentence if len(sentence) < 60 else sentence[:57] + "..."
                        raise FieldError(f"{where}: the {field.name} head {error} (sentence {sentence!r})") from None
        return selected

    return split.map(select, batched=True, remove_columns=split.column_names, desc="Selecting the heads' columns")


def written_columns(
    sources: Mapping[str, ReaderOptions], feeds: Mapping[str, Sequence[str]], fields: Mapping[str, Field]
) -> dict[str, dict[str, object]]:
    """Each token-level head's corpus format, column and tag scheme: where prediction writes its values back."""
    columns: dict[str, dict[str, object]] = {}
    for corpus, heads in feeds.items():
        source = sources[corpus]
        for field in (fields[head] for head in heads):
            if field.level == "token" and field.column is not None:
                column = source.tag_column if field.column == "tags" else field.column
                columns[field.name] = {"format": source.format, "column": column, "scheme": source.tag_scheme}
    return columns
