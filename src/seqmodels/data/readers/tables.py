"""Tables: CSV and TSV (a text and a label column), JSON Lines and parquet (tokens or text, with tags or a label).

A record is read as tagging when it has the tags column, else as classification; class indices (the
``datasets`` ``ClassLabel`` schema of Hugging Face datasets, e.g. conll2003) are read as their names.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Features

from seqmodels.data.readers.common import ReaderOptions
from seqmodels.data.readers.common import DataFormatError, Example, Located, nonblank_lines, read_text, tokenize



def read_delimited(path: str, corpus: ReaderOptions, delimiter: str, quoting: int) -> Iterator[Located]:
    """CSV/TSV with a header row; the text is tokenized on whitespace."""
    text = io.StringIO(read_text(path, corpus.encoding), newline="")
    reader = csv.DictReader(text, delimiter=delimiter, quoting=quoting)
    present = reader.fieldnames or []
    for column in (corpus.text_column, corpus.label_column):
        if column not in present:
            raise DataFormatError(
                f"{path}:1: no column {column!r}; the header has {present} "
                "(choose them with --data.text_column / --data.label_column)"
            )
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row[corpus.label_column]:
                raise DataFormatError(f"{where}: expected a value in column {corpus.label_column!r}")
            yield where, {"tokens": tokenize(row[corpus.text_column] or ""), "label": row[corpus.label_column]}
    except csv.Error as error:
        raise DataFormatError(f"{path}:{reader.line_num}: {error}") from None


def read_csv(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    return read_delimited(path, corpus, delimiter=",", quoting=csv.QUOTE_MINIMAL)


def read_tsv(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    return read_delimited(path, corpus, delimiter="\t", quoting=csv.QUOTE_NONE)


def read_jsonl(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """One JSON object per line, with the columns of :func:`table_example`; ints are kept as ``str(int)``."""
    for where, line in nonblank_lines(path, corpus.encoding):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{where}: expected a JSON object ({error})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, found {type(record).__name__}")
        yield where, table_example(where, record, {}, corpus)


def read_parquet(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """A parquet table with the columns of :func:`table_example`; ClassLabel ints (``datasets`` schema) -> names."""
    try:
        table = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise DataFormatError(f"{path}: expected a parquet file ({error})") from None
    names = class_names(Features.from_arrow_schema(table.schema_arrow))
    row = 0
    for batch in table.iter_batches():
        for record in batch.to_pylist():
            row += 1
            where = f"{path}: row {row}"
            yield where, table_example(where, record, names, corpus)


def class_names(features: Features) -> dict[str, list[str]]:
    """The class names of each ClassLabel column, or list-of-ClassLabel column (tag sequences)."""
    inner = {column: getattr(feature, "feature", feature) for column, feature in features.items()}
    return {column: feature.names for column, feature in inner.items() if isinstance(feature, ClassLabel)}


def _as_string(where: str, column: str, value: Any, names: list[str] | None) -> str:
    """A cell as a string: strings as they are, class indices as their name (or ``str(int)`` with no names)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if names is None:
            return str(value)
        if 0 <= value < len(names):
            return names[value]
    raise DataFormatError(f"{where}: column {column!r} has {value!r}; expected a string or a class index")


def _string_list(where: str, record: dict, column: str, names: list[str] | None = None) -> list[str]:
    """A list cell as a list of strings."""
    values = record[column]
    if not isinstance(values, list):
        raise DataFormatError(f"{where}: column {column!r} has {values!r}; expected a list")
    return [_as_string(where, column, value, names) for value in values]


def table_example(where: str, record: dict, names: dict[str, list[str]], corpus: ReaderOptions) -> Example:
    """A record as tagging (tokens + the tags column) or classification (tokens or text, + the label column)."""
    c = corpus
    if c.tokens_column in record:
        tokens = _string_list(where, record, c.tokens_column)
    elif isinstance(record.get(c.text_column), str):
        tokens = tokenize(record[c.text_column])
    else:
        raise DataFormatError(
            f"{where}: expected a {c.tokens_column!r} list or a {c.text_column!r} string; "
            f"the columns are {sorted(record)} (choose them with --data.tokens_column / --data.text_column)"
        )
    if c.tags_column in record:
        return {"tokens": tokens, "tags": _string_list(where, record, c.tags_column, names.get(c.tags_column))}
    if c.label_column in record:
        label = _as_string(where, c.label_column, record[c.label_column], names.get(c.label_column))
        return {"tokens": tokens, "label": label}
    raise DataFormatError(
        f"{where}: expected a {c.tags_column!r} column (tagging) or a {c.label_column!r} column (classification); "
        f"the columns are {sorted(record)} (choose them with --data.tags_column / --data.label_column)"
    )
