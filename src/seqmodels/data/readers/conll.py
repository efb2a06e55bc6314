"""Column formats: CoNLL-U (Universal Dependencies) and CoNLL-2000/2003 (whitespace-separated columns).

A sentence is a block of lines ended by a blank line. The word-line functions here are also what
``seqmodels-predict`` reads CoNLL input with, so training and prediction see the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from seqmodels.data.readers.common import (
    DataFormatError,
    Located,
    ReaderOptions,
    numbered_lines,
    sentence_blocks,
    tokenize,
)


CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
FEATS = CONLLU_FIELDS.index("feats")
DOCSTART = "-DOCSTART-"  # CoNLL-2003's document separator: not a token


class ConlluTagField(NamedTuple):
    """Where a CoNLL-U file holds the tags: a column (``upos``, ``xpos``, ...) or one ``Key=Value`` attribute of
    the FEATS or MISC column (``misc:NE``, ``feats:Tense``); words without the attribute read as ``_``."""

    column: int
    key: str | None = None

    @classmethod
    def parse(cls, tag_column: str | int | None) -> ConlluTagField:
        name, _, key = str(tag_column or "upos").partition(":")
        if name.lower() not in CONLLU_FIELDS or (key and name.lower() not in ("feats", "misc")):
            raise ValueError(
                f"tag_column for conllu must be one of {CONLLU_FIELDS}, or feats:KEY / misc:KEY, got {tag_column!r}"
            )
        return cls(CONLLU_FIELDS.index(name.lower()), key or None)

    def get(self, fields: list[str]) -> str:
        if self.key is None:
            return fields[self.column]
        return attributes(fields[self.column]).get(self.key, "_")

    def set(self, fields: list[str], tag: str) -> list[str]:
        """``fields`` with the tag written in this column or attribute, and nothing else changed. An attribute
        tagged ``_`` is left out (the word has none); FEATS stays sorted by name, as CoNLL-U requires."""
        value = tag
        if self.key is not None:
            pairs = attributes(fields[self.column]) | {self.key: tag}
            if tag == "_":
                del pairs[self.key]
            items = sorted(pairs.items(), key=lambda pair: pair[0].lower()) if self.column == FEATS else pairs.items()
            value = "|".join(f"{k}={v}" for k, v in items) or "_"
        return [*fields[: self.column], value, *fields[self.column + 1 :]]


def attributes(column: str) -> dict[str, str]:
    """``A=1|B=2`` -> {"A": "1", "B": "2"} (``_``: none), in file order: CoNLL-U's FEATS and MISC."""
    pairs = (item.partition("=") for item in column.split("|") if column != "_")
    return {key: value for key, _, value in pairs}


def conllu_word(where: str, line: str) -> list[str] | None:
    """A CoNLL-U line's 10 fields when it is a word; None for a comment, a ``3-4`` multiword range or an ``8.1``
    empty node (which carry no tag of their own); :class:`DataFormatError` for anything else, a word without a
    FORM included."""
    if line.startswith("#"):
        return None
    fields = line.split("\t")
    if len(fields) != len(CONLLU_FIELDS):
        raise DataFormatError(f"{where}: expected 10 TAB-separated columns, found {len(fields)}")
    if fields[0].isdigit():
        if not fields[1]:
            raise DataFormatError(f"{where}: expected a FORM (column 2) of one or more characters, found an empty one")
        return fields
    if re.fullmatch(r"\d+-\d+|\d+\.\d+", fields[0]):
        return None
    raise DataFormatError(f"{where}: expected a word ID like 3, 3-4 or 8.1, found {fields[0]!r}")


def conll_word(line: str) -> list[str] | None:
    """A CoNLL line's columns (split on ASCII whitespace: a token may contain U+00A0); None for ``-DOCSTART-``."""
    return None if line.startswith(DOCSTART) else tokenize(line)


ANNOTATIONS = ("lemma", "upos", "xpos", "feats", "deprel", "misc")  # the columns a head can read by name


def read_conllu(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """CoNLL-U: the FORM of each word as ``tokens``, its tag from ``tag_column`` (UPOS by default) as ``tags``, and
    each column of :data:`ANNOTATIONS` under its name."""
    field = ConlluTagField.parse(corpus.tag_column)
    for block in sentence_blocks(numbered_lines(path, corpus.encoding)):
        lines = [(number, line) for number, line in block if not line.startswith("#")]
        if not lines:
            continue  # comments only
        numbered = [(number, fields) for number, line in lines if (fields := conllu_word(f"{path}:{number}", line))]
        for expected, (number, fields) in enumerate(numbered, start=1):
            if fields[0] != str(expected):  # e.g. two sentences without the blank line between them
                raise DataFormatError(f"{path}:{number}: expected word ID {expected} (each sentence counts its words "
                                      f"from 1, after a blank line), found {fields[0]}")  # fmt: skip
        words = [fields for _, fields in numbered]
        columns = {name: [w[CONLLU_FIELDS.index(name)] for w in words] for name in ("form", *ANNOTATIONS)}
        yield f"{path}:{lines[0][0]}", {"tokens": columns.pop("form"), "tags": [field.get(w) for w in words]} | columns


def read_conll(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """CoNLL-2000/2003: the token first, the tag in column ``tag_column`` (the last by default); as many columns
    on every line of the file."""
    try:
        tag = -1 if corpus.tag_column is None else int(corpus.tag_column)
    except ValueError:
        raise ValueError(f"tag_column for conll must be a column index, got {corpus.tag_column!r}") from None
    width, first = None, None
    for block in sentence_blocks(numbered_lines(path, corpus.encoding)):
        rows, start = [], None
        for number, line in block:
            fields = conll_word(line)
            if fields is None:
                continue
            start = start or number
            if width is None:
                width, first = len(fields), number
                if width < 2 or not -width <= tag < width:
                    found = f"found {width} columns"
                    raise DataFormatError(f"{path}:{number}: expected a token and tag column {tag}, {found}")
            if len(fields) != width:
                found = f"found {len(fields)}"
                raise DataFormatError(f"{path}:{number}: expected {width} columns like line {first}, {found}")
            rows.append(fields)
        if rows:
            yield f"{path}:{start}", {"tokens": [r[0] for r in rows], "tags": [r[tag] for r in rows]}
