"""Readers that turn corpus files into a ``DatasetDict`` of strings.

Tagging corpora give the columns ``tokens`` and ``tags`` (lists of strings); classification corpora give ``tokens`` and
``label`` (a string). Each file is read by a plain Python generator that raises :class:`DataFormatError` naming the file
and line of the first malformed input; ``datasets`` caches the result keyed on the file's sha256 and the reader options.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, Features
from datasets.exceptions import DatasetGenerationError

logger = logging.getLogger("seqmodels")

_TABLE_OPTIONS = ("tokens_column", "text_column", "tags_column", "label_column", "tag_scheme")
FORMAT_OPTIONS = {  # each format, and the reader options it reads
    "conllu": ("tag_column", "tag_scheme", "encoding"),
    "conll": ("tag_column", "tag_scheme", "encoding"),
    "label_text": ("encoding",),
    "csv": ("text_column", "label_column", "encoding"),
    "tsv": ("text_column", "label_column", "encoding"),
    "jsonl": (*_TABLE_OPTIONS, "encoding"),
    "parquet": _TABLE_OPTIONS,
    "sst_trees": ("granularity", "use_subtrees", "encoding"),
    "hub": ("hub_name", "hub_config", *_TABLE_OPTIONS),
}
FORMATS = tuple(FORMAT_OPTIONS)
CONLLU_FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
SST_LABELS = {
    "binary": {"0": "negative", "1": "negative", "2": None, "3": "positive", "4": "positive"},
    "fine": {label: label for label in "01234"},
}
_HUB_SPLITS = {"train": "train", "validation": "validation", "dev": "validation", "valid": "validation", "test": "test"}

# ASCII whitespace only: U+00A0 (no-break space) and other Unicode spaces stay inside tokens, as in SST-2's `2\xa01\/2`.
_ASCII_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")
_LABEL_AND_TEXT = re.compile(r"([^ \t]+)[ \t]+(.*)")
_TREE_TOKENS = re.compile(r"\(|\)|[^ \t\n\r\f\v()]+")  # words may contain U+00A0 (`8\xa01\/2`)

_SOURCE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()  # in cache keys: edited readers read again
_Example = dict[str, Any]
_Located = tuple[str, _Example]  # (where it comes from: "file:line", the example)


class DataFormatError(ValueError):
    """Malformed input: the message names the file, the line and what was expected."""


@dataclass(frozen=True)
class ReaderOptions:
    """Everything that decides what a file reads as; part of each split's cache key."""

    tag_column: str | int | None = None
    tag_scheme: Literal["keep", "iob2"] = "keep"
    text_column: str = "text"
    label_column: str = "label"
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    lowercase: bool = False
    granularity: Literal["binary", "fine"] = "binary"
    use_subtrees: bool = False
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        for name, choices in (("tag_scheme", ("keep", "iob2")), ("granularity", tuple(SST_LABELS))):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")


def tokenize(text: str) -> list[str]:
    """Split on runs of ASCII whitespace (not on U+00A0, which some corpora have inside tokens)."""
    return [token for token in _ASCII_WHITESPACE.split(text) if token]


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags as IOB2 (BIO): an ``I-X`` starting a chunk (not after ``B-X`` or ``I-X``) becomes ``B-X``."""
    converted, previous = [], "O"
    for tag in tags:
        starts_chunk = tag.startswith("I-") and previous[2:] != tag[2:]
        converted.append("B-" + tag[2:] if starts_chunk else tag)
        previous = tag
    return converted


def _read_text(path: str, encoding: str) -> str:
    """The whole file as text (without a leading BOM); a decoding error names the line."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}:{line}: cannot decode as {encoding} ({error.reason}); set --data.encoding to the file's encoding"
        ) from None


def _numbered_lines(path: str, encoding: str) -> Iterator[tuple[int, str]]:
    """The file's lines without line ends (``\\n``, ``\\r\\n`` or ``\\r``), numbered from 1."""
    for number, line in enumerate(io.StringIO(_read_text(path, encoding), newline=None), start=1):
        yield number, line.rstrip("\n")


def _nonblank_lines(path: str, encoding: str) -> Iterator[tuple[str, str]]:
    """The file's non-blank lines, each with where it is (``path:line``)."""
    for number, line in _numbered_lines(path, encoding):
        if line.strip():
            yield f"{path}:{number}", line


def _blocks(path: str, encoding: str, skip: Callable[[str], bool]) -> Iterator[list[tuple[int, str]]]:
    """Runs of non-blank lines (one sentence each) with their line numbers, leaving out the lines ``skip`` accepts."""
    for blank, lines in itertools.groupby(_numbered_lines(path, encoding), key=lambda item: not item[1].strip()):
        block = [(number, line) for number, line in lines if not skip(line)]
        if block and not blank:
            yield block


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
        return _attributes(fields[self.column]).get(self.key, "_")

    def set(self, fields: list[str], tag: str) -> list[str]:
        """``fields`` with the tag written in this column or attribute, and nothing else changed."""
        value = tag
        if self.key is not None:
            attributes = _attributes(fields[self.column]) | {self.key: tag}
            value = "|".join(f"{k}={v}" for k, v in attributes.items())
        return [*fields[: self.column], value, *fields[self.column + 1 :]]


def _attributes(column: str) -> dict[str, str]:
    """``A=1|B=2`` -> {"A": "1", "B": "2"} (``_``: none), in file order."""
    pairs = (item.partition("=") for item in column.split("|") if column != "_")
    return {key: value for key, _, value in pairs}


def _read_conllu(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """CoNLL-U: a word per line, 10 TAB-separated columns; comments, ``3-4`` ranges and ``8.1`` empty nodes skipped."""
    field = ConlluTagField.parse(options.tag_column)
    for block in _blocks(path, options.encoding, skip=lambda line: line.startswith("#")):
        words = []
        for number, line in block:
            fields = line.split("\t")
            if len(fields) != len(CONLLU_FIELDS):
                raise DataFormatError(f"{path}:{number}: expected 10 TAB-separated columns, found {len(fields)}")
            if fields[0].isdigit():
                words.append(fields)
            elif not re.fullmatch(r"\d+-\d+|\d+\.\d+", fields[0]):
                raise DataFormatError(f"{path}:{number}: expected a word ID like 3, 3-4 or 8.1, found {fields[0]!r}")
        yield f"{path}:{block[0][0]}", {"tokens": [w[1] for w in words], "tags": [field.get(w) for w in words]}


def _read_conll(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """CoNLL-2000/2003: whitespace-separated columns, the token first, as many columns on every line of the file."""
    try:
        tag = -1 if options.tag_column is None else int(options.tag_column)
    except ValueError:
        raise ValueError(f"tag_column for conll must be a column index, got {options.tag_column!r}") from None
    width, first = None, None
    for block in _blocks(path, options.encoding, skip=lambda line: line.startswith("-DOCSTART-")):
        rows = []
        for number, line in block:
            fields = tokenize(line)  # ASCII whitespace, as everywhere: a token may contain U+00A0
            if width is None:
                width, first = len(fields), number
                if width < 2 or not -width <= tag < width:
                    raise DataFormatError(
                        f"{path}:{number}: expected a token and tag column {tag}, found {width} columns"
                    )
            if len(fields) != width:
                raise DataFormatError(
                    f"{path}:{number}: expected {width} columns like line {first}, found {len(fields)}"
                )
            rows.append(fields)
        yield f"{path}:{block[0][0]}", {"tokens": [r[0] for r in rows], "tags": [r[tag] for r in rows]}


def _read_label_text(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """``label<space or tab>text`` lines (SST-2's ``stsa.binary.*``); blank lines are skipped."""
    for where, line in _nonblank_lines(path, options.encoding):
        match = _LABEL_AND_TEXT.fullmatch(line)
        if match is None:
            raise DataFormatError(f"{where}: expected '<label> <text>', found {line[:60]!r}")
        yield where, {"tokens": tokenize(match[2]), "label": match[1]}


def _read_delimited(path: str, options: ReaderOptions, delimiter: str, quoting: int) -> Iterator[_Located]:
    """CSV/TSV with a header row; the text is tokenized on whitespace."""
    text = io.StringIO(_read_text(path, options.encoding), newline="")
    reader = csv.DictReader(text, delimiter=delimiter, quoting=quoting)
    present = reader.fieldnames or []
    for column in (options.text_column, options.label_column):
        if column not in present:
            raise DataFormatError(
                f"{path}:1: no column {column!r}; the header has {present} "
                "(choose them with --data.text_column / --data.label_column)"
            )
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row[options.label_column]:
                raise DataFormatError(f"{where}: expected a value in column {options.label_column!r}")
            yield where, {"tokens": tokenize(row[options.text_column] or ""), "label": row[options.label_column]}
    except csv.Error as error:
        raise DataFormatError(f"{path}:{reader.line_num}: {error}") from None


def _read_jsonl(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """One JSON object per line, with the columns of :func:`_table_example`; ints are kept as ``str(int)``."""
    for where, line in _nonblank_lines(path, options.encoding):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{where}: expected a JSON object ({error})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, found {type(record).__name__}")
        yield where, _table_example(where, record, {}, options)


def _read_parquet(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """A parquet table with the columns of :func:`_table_example`; ClassLabel ints (``datasets`` schema) -> names."""
    try:
        table = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise DataFormatError(f"{path}: expected a parquet file ({error})") from None
    names = _class_names(Features.from_arrow_schema(table.schema_arrow))
    row = 0
    for batch in table.iter_batches():
        for record in batch.to_pylist():
            row += 1
            where = f"{path}: row {row}"
            yield where, _table_example(where, record, names, options)


def _class_names(features: Features) -> dict[str, list[str]]:
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


def _table_example(where: str, record: dict, names: dict[str, list[str]], options: ReaderOptions) -> _Example:
    """A record as tagging (tokens + the tags column) or classification (tokens or text, + the label column)."""
    o = options
    if o.tokens_column in record:
        tokens = _string_list(where, record, o.tokens_column)
    elif isinstance(record.get(o.text_column), str):
        tokens = tokenize(record[o.text_column])
    else:
        raise DataFormatError(
            f"{where}: expected a {o.tokens_column!r} list or a {o.text_column!r} string; "
            f"the columns are {sorted(record)} (choose them with --data.tokens_column / --data.text_column)"
        )
    if o.tags_column in record:
        return {"tokens": tokens, "tags": _string_list(where, record, o.tags_column, names.get(o.tags_column))}
    if o.label_column in record:
        label = _as_string(where, o.label_column, record[o.label_column], names.get(o.label_column))
        return {"tokens": tokens, "label": label}
    raise DataFormatError(
        f"{where}: expected a {o.tags_column!r} column (tagging) or a {o.label_column!r} column (classification); "
        f"the columns are {sorted(record)} (choose them with --data.tags_column / --data.label_column)"
    )


def _parse_tree(text: str) -> list[tuple[str, list[str]]]:
    """Every node of one PTB tree ``(label (label word) ...)`` as ``(label, its words)``, children first, root last."""
    tokens = _TREE_TOKENS.findall(text)
    nodes: list[tuple[str, list[str]]] = []
    end = _parse_node(tokens, 0, nodes)
    if end != len(tokens):
        raise ValueError(f"expected the end of the line after the tree, found {tokens[end]!r}")
    return nodes


def _parse_node(tokens: list[str], i: int, nodes: list[tuple[str, list[str]]]) -> int:
    """Parse the node that starts at ``tokens[i]``, append it and its descendants to ``nodes``; return where it ends."""
    if tokens[i : i + 1] != ["("] or i + 1 >= len(tokens) or tokens[i + 1] in "()":
        raise ValueError(f"expected '(label' at token {i + 1}")
    label, i = tokens[i + 1], i + 2
    if i < len(tokens) and tokens[i] not in "()":
        words, i = [tokens[i]], i + 1
    else:
        words = []
        while tokens[i : i + 1] == ["("]:
            i = _parse_node(tokens, i, nodes)
            words += nodes[-1][1]
    if not words or tokens[i : i + 1] != [")"]:
        raise ValueError(f"expected ')' closing ({label} at token {i + 1}")
    nodes.append((label, words))
    return i + 1


def _read_sst_trees(path: str, options: ReaderOptions) -> Iterator[_Located]:
    """Sentiment Treebank trees, one per line: the root sentences, or with ``use_subtrees`` every distinct phrase."""
    labels, seen = SST_LABELS[options.granularity], set()
    for where, line in _nonblank_lines(path, options.encoding):
        try:
            nodes = _parse_tree(line)
        except ValueError as error:
            raise DataFormatError(f"{where}: malformed tree: {error}") from None
        for sentiment, words in reversed(nodes) if options.use_subtrees else nodes[-1:]:
            if sentiment not in labels:
                raise DataFormatError(f"{where}: expected a sentiment label 0-4, found {sentiment!r}")
            phrase = (tuple(words), labels[sentiment])
            if phrase[1] is None or phrase in seen:
                continue
            if options.use_subtrees:  # phrases repeat across trees ("the", "film"): keep each (tokens, label) once
                seen.add(phrase)
            yield where, {"tokens": words, "label": phrase[1]}


_READERS: dict[str, Callable[[str, ReaderOptions], Iterator[_Located]]] = {
    "conllu": _read_conllu,
    "conll": _read_conll,
    "label_text": _read_label_text,
    "csv": partial(_read_delimited, delimiter=",", quoting=csv.QUOTE_MINIMAL),
    "tsv": partial(_read_delimited, delimiter="\t", quoting=csv.QUOTE_NONE),
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "sst_trees": _read_sst_trees,
}


def _checked(where: str, example: _Example, options: ReaderOptions) -> _Example:
    """Check an example has tokens (and one tag per token), then apply ``tag_scheme`` and ``lowercase``."""
    tokens, tags = example["tokens"], example.get("tags")
    if not tokens:
        raise DataFormatError(f"{where}: expected a sentence with at least one token, found none")
    if tags is not None and len(tags) != len(tokens):
        raise DataFormatError(f"{where}: expected one tag per token, found {len(tokens)} tokens and {len(tags)} tags")
    if tags is not None and options.tag_scheme == "iob2":
        example["tags"] = iob1_to_iob2(tags)
    if options.lowercase:
        example["tokens"] = [token.lower() for token in tokens]
    return example


def _generate(format: str, path: str, options: ReaderOptions, **cache_key: str) -> Iterator[_Example]:
    """The checked examples of one file, all of one kind (``cache_key`` only keys the ``datasets`` cache)."""
    columns = None
    for where, example in _READERS[format](path, options):
        if columns is not None and set(example) != columns:
            raise DataFormatError(f"{where}: expected columns {sorted(columns)} as before, found {sorted(example)}")
        columns = set(example)
        yield _checked(where, example, options)
    if columns is None:
        raise DataFormatError(f"{path}: expected at least one sentence, found none (empty file? wrong --data.format?)")


def _read_split(format: str, path: str, split: str, options: ReaderOptions, cache_dir: str | None) -> Dataset:
    """One file as a ``Dataset``, cached on the options and the sha256 of the file and of this module."""
    try:
        sha256 = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    if split != "train":  # evaluation is always on whole sentences
        options = replace(options, use_subtrees=False)
    gen_kwargs = {"format": format, "path": str(path), "options": options, "file": sha256, "reader": _SOURCE_SHA256}
    try:
        return Dataset.from_generator(_generate, gen_kwargs=gen_kwargs, split=split, cache_dir=cache_dir)
    except DatasetGenerationError as error:  # datasets wraps what the generator raised; nothing is left in the cache
        raise (error.__cause__ or error) from None


def _hub_example(
    record: dict, index: int, where: str, names: dict[str, list[str]], options: ReaderOptions, **cache_key: str
) -> _Example:
    """``datasets.map`` function: one hub record as a checked example (``cache_key`` only keys the cache)."""
    location = f"{where}, row {index + 1}"
    return _checked(location, _table_example(location, record, names, options), options)


def _read_hub(name: str, config: str | None, options: ReaderOptions, cache_dir: str | None) -> dict[str, Dataset]:
    """The train/validation/test splits of a hub dataset (or a local directory of parquet files), as strings."""
    splits = {}
    for split, dataset in datasets.load_dataset(name, config, cache_dir=cache_dir).items():
        if split not in _HUB_SPLITS:
            logger.info("hub dataset %s: ignoring split %r (not train, validation/dev or test)", name, split)
            continue
        splits[_HUB_SPLITS[split]] = dataset.map(
            _hub_example,
            with_indices=True,
            remove_columns=dataset.column_names,
            fn_kwargs={
                "where": f"{name} ({split})",
                "names": _class_names(dataset.features),
                "options": options,
                "reader": _SOURCE_SHA256,
            },
            desc=f"Reading {split}",
        )
    if "train" not in splits:
        raise DataFormatError(f"hub dataset {name}: expected a 'train' split, found {sorted(splits)}")
    return splits


def _carve_validation(train: Dataset, val_fraction: float, seed: int) -> dict[str, Dataset]:
    """Hold out a seeded ``val_fraction`` of train as the validation split, and log that it did so."""
    parts = train.train_test_split(test_size=val_fraction, seed=seed)
    logger.info(
        "no validation file: holding out %d of %d training sentences as validation (val_fraction=%s, seed=%d)",
        len(parts["test"]),
        len(train),
        val_fraction,
        seed,
    )
    return {"train": parts["train"], "validation": parts["test"]}


def read_corpus(
    format: str,
    train_file: str | None = None,
    val_file: str | None = None,
    test_file: str | None = None,
    *,
    tag_column: str | int | None = None,
    tag_scheme: Literal["keep", "iob2"] = "keep",
    text_column: str = "text",
    label_column: str = "label",
    tokens_column: str = "tokens",
    tags_column: str = "tags",
    lowercase: bool = False,
    granularity: Literal["binary", "fine"] = "binary",
    use_subtrees: bool = False,
    hub_name: str | None = None,
    hub_config: str | None = None,
    encoding: str = "utf-8",
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Read a corpus into ``train``, ``validation`` (carved from train when there is no file) and, if given, ``test``.

    ``tag_column`` is a CoNLL-U field name for ``conllu`` (default ``upos``) and a column index for ``conll`` (default
    the last); ``tag_scheme="iob2"`` rewrites IOB1 tags as IOB2. Malformed input raises :class:`DataFormatError`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    options = ReaderOptions(
        tag_column=tag_column, tag_scheme=tag_scheme, text_column=text_column, label_column=label_column,
        tokens_column=tokens_column, tags_column=tags_column, lowercase=lowercase, granularity=granularity,
        use_subtrees=use_subtrees, encoding=encoding,
    )  # fmt: skip
    if format == "hub":
        if hub_name is None:
            raise ValueError("format 'hub' needs hub_name (a hub dataset id or a local directory)")
        splits = _read_hub(hub_name, hub_config, options, cache_dir)
    else:
        if train_file is None:
            raise ValueError(f"format {format!r} needs train_file")
        files = {"train": train_file, "validation": val_file, "test": test_file}
        splits = {split: _read_split(format, path, split, options, cache_dir) for split, path in files.items() if path}
    if "validation" not in splits:
        splits |= _carve_validation(splits["train"], val_fraction, seed)
    return DatasetDict({split: splits[split] for split in ("train", "validation", "test") if split in splits})
