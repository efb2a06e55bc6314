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
    """Make ``head`` buildable by its ``name`` (a class decorator); a name is taken once."""
    if HEADS.get(head.name, head) is not head:
        raise ValueError(f"a head named {head.name!r} is already registered ({HEADS[head.name].__qualname__})")
    HEADS[head.name] = head
    return head


for _module in pkgutil.iter_modules(__path__):  # each head's module registers it: tagger, classifier, ...
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["HEADS", "TaskHead", "register_head"]
