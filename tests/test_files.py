"""A file written whole or not at all, through a symlink to its target, and straight into what is not a file."""

import os
import stat
import threading
from pathlib import Path

import pytest

from seqmodels.files import is_stream, replacing


def test_a_file_is_replaced_only_when_the_write_ends_without_an_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(path) as partial:
        partial.write_text("half")
        raise RuntimeError("the run fails mid-write")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
    with replacing(path) as partial:
        partial.write_text("new\n")
    assert path.read_text() == "new\n" and list(tmp_path.iterdir()) == [path]


def test_through_a_symlink_the_file_it_names_is_replaced_and_the_link_kept(tmp_path):
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    with replacing(link) as partial:
        partial.write_text("new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_a_pipe_is_written_into_not_replaced_by_a_file(tmp_path):
    fifo = tmp_path / "records.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    with replacing(fifo) as target, target.open("w") as file:
        file.write("a record\n")
    reader.join(timeout=10)
    assert received == ["a record\n"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_missing_folder_is_named_not_the_file_beside_the_target(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere/out\.jsonl: no folder .*nowhere$"):
        with replacing(tmp_path / "nowhere" / "out.jsonl"):
            pass


def test_a_folder_or_a_loop_of_symlinks_is_an_error_and_stays_as_it_was(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder; expected a file"), replacing(tmp_path):
        pass
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links"), replacing(tmp_path / "a"):
        pass
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_replaced_file_keeps_its_permissions_and_names_under_dev_are_streams(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    with replacing(path) as partial:
        partial.write_text("new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert is_stream(Path("/dev/stdout")) and is_stream(Path("/dev/fd/63")) and not is_stream(path)


def test_a_killed_runs_partial_file_is_not_appended_to(tmp_path):
    path = tmp_path / "out.jsonl"
    path.with_name("out.jsonl.partial").write_text("what a killed run left\n")
    with replacing(path) as partial, partial.open("a") as file:  # seqmodels-predict appends (for streams)
        file.write("new\n")
    assert path.read_text() == "new\n"
