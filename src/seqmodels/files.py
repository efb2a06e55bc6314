"""Writing a file whole or not at all: a failed or killed write leaves the old file, never half a new one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Where to write ``path``'s new content: beside it, renamed over it once the block ends without an error. Through
    a symlink, the file it names is replaced, not the link. What is not a regular file (``/dev/null``, a pipe, a
    terminal) cannot be replaced, and a rename would put a file in its place: it is written to as it is."""
    if path.exists() and not path.is_file():
        yield path
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: no folder {target.parent}")
    partial = target.with_name(target.name + ".partial")
    try:
        yield partial
        os.replace(partial, target)  # atomic within one file system
    finally:
        partial.unlink(missing_ok=True)
