"""The task heads, by name: the registry that configs (``model.<name>``) and checkpoints build heads from.

A head registers itself with :func:`register_head` when its module is imported. Every module in this folder
is imported here, so adding a task is adding one file; a head defined elsewhere (a test, your own package)
registers the same way once imported.
"""

from __future__ import annotations

import importlib
import pkgutil

from seqmodels.models.heads.base import TaskHead

HEADS: dict[str, type[TaskHead]] = {}


def register_head(head: type[TaskHead]) -> type[TaskHead]:
    """Make ``head`` buildable by its ``name`` (a class decorator); a name is taken once, and the class sets every
    class attribute :class:`TaskHead` lists."""
    missing = [attribute for attribute in TaskHead.__annotations__ if not hasattr(head, attribute)]
    if missing:
        raise TypeError(f"{head.__qualname__} does not set {', '.join(missing)} (class attributes; see TaskHead)")
    if HEADS.get(head.name, head) is not head:
        raise ValueError(f"a head named {head.name!r} is already registered ({HEADS[head.name].__qualname__})")
    HEADS[head.name] = head
    return head


def check_outputs(heads: dict[str, type[TaskHead]]) -> None:
    """Refuse two heads that would write the same field of the prediction records (one would overwrite the other's
    in every record) or both fill CoNLL-U's tag column, in one line naming both. Their export outputs are named
    after them, so those are distinct already."""
    writers: dict[str, str] = {}
    for name, head in heads.items():
        places = [f"the prediction field {field!r}" for field in head.fields]
        places += ["CoNLL-U's tag column"] if head.conllu == "column" else []
        for place in places:
            if place in writers:
                raise ValueError(
                    f"the {writers[place]} and {name} heads would both write {place}; a head writes only its own "
                    "(give one of them other `fields` or `conllu` in its class)"
                )
            writers[place] = name


for _module in pkgutil.iter_modules(__path__):  # each head's module registers it: tagger, classifier, ...
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["HEADS", "TaskHead", "check_outputs", "register_head"]
