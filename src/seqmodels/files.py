"""Writing a file whole or not at all: a failed or killed write leaves the old file, never half a new one."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

STREAM_FOLDERS = ("/dev/", "/proc/")  # /dev/stdout, /dev/fd/63 (a shell's >(...)), /dev/null: open streams


def is_stream(path: Path) -> bool:
    """Whether ``path`` names no file to replace but a stream to write into: a name under /dev or /proc (even
    /dev/stdout redirected to a file), or a pipe, device or socket."""
    if str(path.absolute()).startswith(STREAM_FOLDERS):
        return True
    return path.exists() and not path.is_file() and not path.is_dir()


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Where to write ``path``'s new content: beside it, renamed over it once the block ends without an error (with
    the old file's permissions). Through a symlink, the file it names is replaced, not the link. A stream
    (:func:`is_stream`) cannot be replaced: it is written into as it is, best opened to append (``/dev/stdout``
    redirected to a file is that file: "w" would truncate it). A folder, or a loop of symlinks, is an ``OSError``
    naming ``path``."""
    with contextlib.suppress(FileNotFoundError):  # a new file, or a symlink to one; ELOOP and others are raised
        path.stat()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file")
    if is_stream(path):
        yield path
        return
    target = Path(os.path.realpath(path))
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: no folder {target.parent}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)  # a killed run's: what is written starts a new file, whatever the mode
    try:
        yield partial
        if target.exists():
            shutil.copymode(target, partial)
        os.replace(partial, target)  # atomic within one file system
    finally:
        partial.unlink(missing_ok=True)
