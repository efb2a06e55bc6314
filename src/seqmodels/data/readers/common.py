"""What every reader shares: the located error, tokenizing, decoding a file, numbering lines, sentence blocks."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol


class ReaderOptions(Protocol):
    """What a reader reads of a corpus: the options :class:`~seqmodels.data.corpus.Corpus` declares (once, there).
    A protocol, so that the readers, below the corpus, never import it."""

    format: str
    train_file: str | None
    val_file: str | None
    test_file: str | None
    predict_file: str | None
    encoding: str
    tag_column: str | int | None
    tag_scheme: str
    text_column: str
    label_column: str
    tokens_column: str
    tags_column: str
    granularity: str
    use_subtrees: bool
    hub_name: str | None
    hub_config: str | None
    val_fraction: float

    def reader(self, split: str) -> ReaderOptions:
        """The options one split's reader sees, as its cache is keyed."""
        ...

Example = dict[str, Any]  # {"tokens": [...], "tags": [...]} or {"tokens": [...], "label": "..."}
Located = tuple[str, Example]  # (where it comes from, "file:line"; the example)

# ASCII whitespace only: U+00A0 (no-break space) and other Unicode spaces stay inside tokens, as in SST-2's `2\xa01\/2`.
_ASCII_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


class DataFormatError(ValueError):
    """Malformed input: the message names the file, the line and what was expected."""


def tokenize(text: str) -> list[str]:
    """Split on runs of ASCII whitespace (not on U+00A0, which some corpora have inside tokens)."""
    return [token for token in _ASCII_WHITESPACE.split(text) if token]


def lone_surrogate(text: str, escaped: bool = False) -> str | None:
    """The first lone surrogate in ``text``, as ``a lone surrogate U+D800``, or None. It is no character, and has
    no UTF-8; one comes from JSON (``"\\ud800"`` is valid JSON), or, in ``escaped`` text (a command line's
    arguments, which Python decodes with ``surrogateescape``), stands for a byte that is not UTF-8: U+DC80 to
    U+DCFF are the bytes 0x80 to 0xFF, said as ``a byte 0xFF that is not UTF-8``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        if escaped and 0xDC80 <= code <= 0xDCFF:
            return f"a byte 0x{code - 0xDC00:02X} that is not UTF-8"
        return f"a lone surrogate U+{code:04X}"
    return None


def token_problem(tokens: Iterable[str], escaped: bool = False) -> str | None:
    """What makes a sentence's tokens unreadable, as "expected ..., found ...", or None: an empty token (a word
    without characters: no embedding of its own, nothing for the character CNN), or a lone surrogate (in
    ``escaped`` text, a byte that is not UTF-8: :func:`lone_surrogate`)."""
    for number, token in enumerate(tokens, start=1):
        if not token:
            return f"expected tokens of one or more characters, found an empty one (token {number})"
        if surrogate := lone_surrogate(token, escaped):
            return f"expected Unicode text, found {surrogate} in token {number}"
    return None


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags as IOB2 (BIO): an ``I-X`` starting a chunk (not after ``B-X`` or ``I-X``) becomes ``B-X``."""
    converted, previous = [], "O"
    for tag in tags:
        starts_chunk = tag.startswith("I-") and previous[2:] != tag[2:]
        converted.append("B-" + tag[2:] if starts_chunk else tag)
        previous = tag
    return converted


def read_text(path: str, encoding: str) -> str:
    """The whole file as text (without a leading BOM); a decoding error names the line."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: cannot decode as {encoding} ({error.reason}); set --data.encoding to the file's encoding"
        ) from None


def numbered_lines(path: str, encoding: str) -> Iterator[tuple[int, str]]:
    """The file's lines without line ends (``\\n``, ``\\r\\n`` or ``\\r``), numbered from 1, read as they come: a
    large file is never in memory whole."""
    try:
        with open(path, encoding=encoding, newline=None) as lines:
            for number, line in enumerate(lines, start=1):
                yield number, (line.removeprefix("\ufeff") if number == 1 else line).rstrip("\n")
    except UnicodeDecodeError:
        read_text(path, encoding)  # raises the error naming the line
        raise


def nonblank_lines(path: str, encoding: str) -> Iterator[tuple[str, str]]:
    """The file's non-blank lines, each with where it is (``path:line``)."""
    for number, line in numbered_lines(path, encoding):
        if line.strip():
            yield f"{path}:{number}", line


def sentence_blocks(numbered: Iterable[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines with their numbers: one sentence each, in CoNLL-U and CoNLL files (and in the
    stream ``seqmodels-predict`` reads, lazily)."""
    for blank, lines in itertools.groupby(numbered, key=lambda item: not item[1].strip()):
        if not blank:
            yield list(lines)


def checked(where: str, example: Example, tag_scheme: str) -> Example:
    """An example after checking that it has tokens, each readable (:func:`token_problem`), and one tag per token,
    its tags and label Unicode text, its tags in ``tag_scheme``."""
    tokens, tags = example["tokens"], example.get("tags")
    if not tokens:
        raise DataFormatError(f"{where}: expected a sentence with at least one token, found none")
    if problem := token_problem(tokens):
        raise DataFormatError(f"{where}: {problem}")
    for column, text in (("tags", " ".join(tags or [])), ("label", example.get("label", ""))):
        if surrogate := lone_surrogate(text):
            raise DataFormatError(f"{where}: expected Unicode text, found {surrogate} in the {column}")
    if tags is not None and len(tags) != len(tokens):
        raise DataFormatError(f"{where}: expected one tag per token, found {len(tokens)} tokens and {len(tags)} tags")
    if tags is not None and tag_scheme == "iob2":
        example["tags"] = iob1_to_iob2(tags)
    return example
