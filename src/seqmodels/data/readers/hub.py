"""Hugging Face Hub datasets (or a local folder of parquet files in their schema), read with ``datasets``.

Records are read like JSON Lines and parquet tables (:func:`~seqmodels.data.readers.tables.table_example`);
``datasets`` caches the download and the mapped splits.
"""

from __future__ import annotations

import logging

import datasets
from datasets import Dataset

from seqmodels.data.readers.common import ReaderOptions
from seqmodels.data.readers.common import DataFormatError, Example, checked
from seqmodels.data.readers.tables import class_names, table_example


logger = logging.getLogger("seqmodels")
HUB_SPLITS = {"train": "train", "validation": "validation", "dev": "validation", "valid": "validation", "test": "test"}


def _hub_example(
    record: dict, index: int, where: str, names: dict[str, list[str]], corpus: ReaderOptions, **cache_key: str
) -> Example:
    """``datasets.map`` function: one hub record as a checked example (``cache_key`` only keys the cache)."""
    location = f"{where}, row {index + 1}"
    return checked(location, table_example(location, record, names, corpus), corpus.tag_scheme)


def read_hub(corpus: ReaderOptions, cache_dir: str | None, source: str) -> dict[str, Dataset]:
    """The train/validation/test splits of ``corpus.hub_name`` as strings (``source``: the readers' hash, which
    keys the cache so that edited readers read again)."""
    name = corpus.hub_name
    splits = {}
    for split, dataset in datasets.load_dataset(name, corpus.hub_config, cache_dir=cache_dir).items():
        if split not in HUB_SPLITS:
            logger.info("hub dataset %s: ignoring split %r (not train, validation/dev or test)", name, split)
            continue
        splits[HUB_SPLITS[split]] = dataset.map(
            _hub_example,
            with_indices=True,
            remove_columns=dataset.column_names,
            fn_kwargs={
                "where": f"{name} ({split})",
                "names": class_names(dataset.features),
                "corpus": corpus.reader(split),
                "reader": source,
            },
            desc=f"Reading {split}",
        )
    if "train" not in splits:
        raise DataFormatError(f"hub dataset {name}: expected a 'train' split, found {sorted(splits)}")
    return splits
