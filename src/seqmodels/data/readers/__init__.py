"""Readers: corpus files in, a ``DatasetDict`` of strings out (``tokens``, and ``tags`` or ``label``).

One module per family of formats (``conll``, ``tables``, ``text``, ``sst``, ``hub``); :data:`FORMAT_OPTIONS`
is the one list of formats, with the options each reads (all declared once, on
:class:`~seqmodels.data.corpus.Corpus`). Each file is read by a plain Python generator that raises
:class:`DataFormatError` naming the file and line of the first malformed input; ``datasets`` caches the
result keyed on the file's sha256, the options its format reads and the readers' own source.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict
from datasets.exceptions import DatasetGenerationError

from seqmodels.data.readers.common import ReaderOptions
from seqmodels.data.readers.common import DataFormatError, Example, Located, checked, iob1_to_iob2, tokenize
from seqmodels.data.readers.conll import read_conll, read_conllu
from seqmodels.data.readers.hub import read_hub
from seqmodels.data.readers.sst import read_sst_trees
from seqmodels.data.readers.tables import read_csv, read_jsonl, read_parquet, read_tsv
from seqmodels.data.readers.text import read_label_text, read_sentences


__all__ = ["FORMATS", "FORMAT_OPTIONS", "DataFormatError", "iob1_to_iob2", "read_corpus", "tokenize"]

logger = logging.getLogger("seqmodels")

_TABLE = ("tokens_column", "text_column", "tags_column", "label_column", "tag_scheme")
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {  # each file format, and the reader options it reads
    "conllu": ("tag_column", "tag_scheme", "encoding"),
    "conll": ("tag_column", "tag_scheme", "encoding"),
    "label_text": ("encoding",),
    "text": ("encoding",),
    "csv": ("text_column", "label_column", "encoding"),
    "tsv": ("text_column", "label_column", "encoding"),
    "jsonl": (*_TABLE, "encoding"),
    "parquet": _TABLE,
    "sst_trees": ("granularity", "use_subtrees", "encoding"),
    "hub": ("hub_name", "hub_config", *_TABLE),
}
FORMATS = tuple(FORMAT_OPTIONS)
READERS: dict[str, Callable[[str, ReaderOptions], Iterator[Located]]] = {
    "conllu": read_conllu,
    "conll": read_conll,
    "label_text": read_label_text,
    "text": read_sentences,
    "csv": read_csv,
    "tsv": read_tsv,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "sst_trees": read_sst_trees,
}  # and "hub", read by datasets.load_dataset
SPLITS = {"train": "train_file", "validation": "val_file", "test": "test_file", "predict": "predict_file"}
# In every cache key: edited readers read their files again.
_SOURCE = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))).hexdigest()


def _generate(path: str, corpus: ReaderOptions, **cache_key: str) -> Iterator[Example]:
    """The checked examples of one file, all of one kind (``cache_key`` only keys the ``datasets`` cache)."""
    columns = None
    for where, example in READERS[corpus.format](path, corpus):
        if columns is not None and set(example) != columns:
            raise DataFormatError(f"{where}: expected columns {sorted(columns)} as before, found {sorted(example)}")
        columns = set(example)
        yield checked(where, example, corpus.tag_scheme)
    if columns is None:
        raise DataFormatError(f"{path}: expected at least one sentence, found none (empty file? wrong --data.format?)")


def read_split(corpus: ReaderOptions, split: str, cache_dir: str | None) -> Dataset:
    """One split's file as a ``Dataset``, cached on the sha256 of the file, the options its format reads and the
    readers' source."""
    path = getattr(corpus, SPLITS[split])
    try:
        with open(path, "rb") as file:  # in chunks: a large raw-text file is never in memory whole
            sha256 = hashlib.file_digest(file, "sha256").hexdigest()
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder; expected a file of the corpus's {split} split") from None
    gen_kwargs = {"path": str(path), "corpus": corpus.reader(split), "file": sha256, "reader": _SOURCE}
    try:
        return Dataset.from_generator(_generate, gen_kwargs=gen_kwargs, split=split, cache_dir=cache_dir)
    except DatasetGenerationError as error:  # datasets wraps what the generator raised; nothing is left in the cache
        raise (error.__cause__ or error) from None


def _carve_validation(train: Dataset, val_fraction: float, seed: int, where: str) -> dict[str, Dataset]:
    """Hold out a seeded ``val_fraction`` of train (read from ``where``) as the validation split, and log that it did
    so."""
    held_out = math.ceil(val_fraction * len(train))  # as datasets rounds it
    if not 0 < held_out < len(train):
        raise ValueError(
            f"{where}: {len(train)} training sentence(s), too few to hold out val_fraction={val_fraction} of them as "
            "validation and train on the rest; give a validation file (--data.val_file) or more training sentences"
        )
    parts = train.train_test_split(test_size=held_out, seed=seed)
    logger.info(
        "no validation file: holding out %d of %d training sentences as validation (val_fraction=%s, seed=%d)",
        len(parts["test"]),
        len(train),
        val_fraction,
        seed,
    )
    return {"train": parts["train"], "validation": parts["test"]}


def read_corpus(corpus: ReaderOptions, seed: int = 0, cache_dir: str | None = None) -> DatasetDict:
    """A file corpus as ``train``, ``validation`` (carved from train with ``val_fraction`` when there is no file),
    and ``test`` and ``predict`` when it has those files. Malformed input raises :class:`DataFormatError`."""
    if corpus.format == "hub":
        splits = read_hub(corpus, cache_dir, _SOURCE)
    else:
        splits = {split: read_split(corpus, split, cache_dir) for split, key in SPLITS.items() if getattr(corpus, key)}
    if "validation" not in splits:
        where = corpus.train_file or f"the hub dataset {corpus.hub_name}"
        splits |= _carve_validation(splits["train"], corpus.val_fraction, seed, where)
    return DatasetDict({split: splits[split] for split in SPLITS if split in splits})
