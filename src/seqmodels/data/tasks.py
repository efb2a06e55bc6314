"""Which corpus feeds which head, checked before anything trains.

A head learns from one column (the tagger from ``tags``, the classifier from ``label``) or from the
tokens alone (the language model). A corpus feeds the heads its ``heads`` option names, or by default
every head it has the annotations of. Each head with a column is fed by exactly one corpus; a head that
needs only tokens can learn from several. Every mistake ends in one line naming the corpus and the head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from seqmodels.models.heads import HEADS

TOKENS_ONLY = "tokens"  # what a corpus offers a head that needs no annotation


def assign_heads(
    columns: Mapping[str, set[str]], chosen: Mapping[str, Sequence[str] | None], tasks: Sequence[str] | None
) -> dict[str, tuple[str, ...]]:
    """Each corpus's heads. ``columns``: each corpus's annotation columns (``tags``, ``label``); ``chosen``: its
    ``heads`` option (None: by its annotations); ``tasks``: the model's heads (None: every head the data has)."""
    present = set().union(*columns.values())
    known = list(tasks) if tasks is not None else [name for name in HEADS if HEADS[name].column in present]
    for name in known:
        if name not in HEADS:
            raise ValueError(f"model: no head is registered as {name!r}; the registered heads are {sorted(HEADS)}")
    fed: dict[str, tuple[str, ...]] = {}
    for corpus, heads in chosen.items():
        if heads is None:  # what its annotations allow
            heads = [name for name in known if (HEADS[name].column or TOKENS_ONLY) in columns[corpus] | {TOKENS_ONLY}]
        for name in heads:
            if name not in known:
                raise ValueError(f"corpus '{corpus}' feeds the {name} head, which the model does not have ({known})")
            column = HEADS[name].column
            if column is not None and column not in columns[corpus]:
                has = ", ".join(sorted(columns[corpus])) or "tokens only"
                raise ValueError(
                    f"corpus '{corpus}' cannot feed the {name} head: it needs '{column}' annotations, and the corpus "
                    f"has {has}"
                )
        fed[corpus] = tuple(heads)
    for name in known:
        feeders = [corpus for corpus, heads in fed.items() if name in heads]
        if not feeders:
            raise ValueError(f"the {name} head has no corpus: none has its annotations or names it under heads")
        if len(feeders) > 1 and HEADS[name].column is not None:
            raise ValueError(
                f"the {name} head is fed by two corpora ({', '.join(feeders)}); one head learns from one corpus: "
                "say which under data.corpora.NAME.heads"
            )
    return fed
