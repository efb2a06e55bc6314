"""Plain text, a sentence per line: ``label<space or tab>text`` lines (sentence classification, e.g. SST-2's
``stsa.binary.*``), or raw sentences without annotations (``text``: for a language model)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from seqmodels.data.readers.common import DataFormatError, Located, ReaderOptions, nonblank_lines, tokenize


_LABEL_AND_TEXT = re.compile(r"([^ \t]+)[ \t]+(.*)")


def read_label_text(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """``label<space or tab>text`` lines (SST-2's ``stsa.binary.*``); blank lines are skipped."""
    for where, line in nonblank_lines(path, corpus.encoding):
        match = _LABEL_AND_TEXT.fullmatch(line)
        if match is None:
            raise DataFormatError(f"{where}: expected '<label> <text>', found {line[:60]!r}")
        yield where, {"tokens": tokenize(match[2]), "label": match[1]}


def read_sentences(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """One sentence per non-blank line, tokenized on ASCII whitespace; no annotation (unlabelled text)."""
    for where, line in nonblank_lines(path, corpus.encoding):
        yield where, {"tokens": tokenize(line)}
