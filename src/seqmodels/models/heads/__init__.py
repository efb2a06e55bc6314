"""The task heads, by name: the registry that configs (``model.<name>``) and checkpoints build heads from.

A head registers itself with :func:`register_head` when its module is imported; the built-in heads are
imported here, and a head defined anywhere else (a test, a user's package) registers the same way.
"""

from __future__ import annotations

from seqmodels.models.heads.base import TaskHead

HEADS: dict[str, type[TaskHead]] = {}


def register_head(head: type[TaskHead]) -> type[TaskHead]:
    """Make ``head`` buildable by its ``name`` (a class decorator); a name is taken once."""
    if HEADS.get(head.name, head) is not head:
        raise ValueError(f"a head named {head.name!r} is already registered ({HEADS[head.name].__qualname__})")
    HEADS[head.name] = head
    return head


from seqmodels.models.heads.classifier import ClassificationHead  # noqa: E402  (they register themselves)
from seqmodels.models.heads.tagger import TaggingHead  # noqa: E402

__all__ = ["HEADS", "ClassificationHead", "TaggingHead", "TaskHead", "register_head"]
