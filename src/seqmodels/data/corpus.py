"""A corpus: its format, its files and the options its reader takes, declared once.

The data module takes these fields whole (``--data.format``, ``--data.tag_column``, ... for one corpus)
and each entry of ``data.corpora`` is one (``--data.corpora.NAME.format`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

from datasets import DatasetDict

from seqmodels.data.readers import FORMAT_OPTIONS, FORMATS, read_corpus
from seqmodels.data.readers.common import DataFormatError
from seqmodels.data.readers.conll import ConlluTagField
from seqmodels.data.readers.sst import SST_LABELS
from seqmodels.data.synthetic import load_synthetic_corpus

DataFormat = Literal[("synthetic", *FORMATS)]  # type: ignore[valid-type]  # Literal["synthetic", "conllu", ...]


@dataclass
class Corpus:
    """One corpus (the embedded synthetic one, files in a format, or a hub dataset).

    Args:
        format: ``synthetic`` (the embedded corpus the project generates), or a file format: ``conllu``,
            ``conll``, ``label_text``, ``text`` (raw sentences, no annotations), ``csv``, ``tsv``, ``jsonl``,
            ``parquet``, ``sst_trees`` or ``hub``.
        train_file: the training file.
        val_file: the validation file; without one, ``val_fraction`` of train is held out (seeded).
        test_file: the test file (optional).
        predict_file: what ``train.py predict`` predicts, in the same format; the test split without one.
        heads: the heads this corpus feeds (with several corpora); by default every head whose annotations
            it has (a tagger its tags, a classifier its labels).
        tag_column: ``conllu``: the column the tags are read from and written back to (``upos``, ``xpos``,
            ``feats:KEY`` or ``misc:KEY``; default ``upos``); ``conll``: the column's index (default the last).
        tag_scheme: ``iob2`` rewrites IOB1 tags (CoNLL-2003's) as IOB2 (BIO); ``keep`` reads them as they are.
        text_column: the text column of ``csv``/``tsv``/``jsonl``/``parquet``/``hub`` records.
        label_column: their label column.
        tokens_column: their token-list column (read instead of the text when present).
        tags_column: their tag-list column (tagging).
        granularity: ``sst_trees``: ``binary`` (SST-2: 0-1 negative, 3-4 positive, 2 dropped) or ``fine`` (SST-5).
        use_subtrees: ``sst_trees``: train on every distinct labelled phrase, not only the sentences.
        hub_name: ``hub``: the dataset's id on the Hugging Face Hub, or a local folder of parquet files.
        hub_config: ``hub``: its configuration name.
        encoding: the text encoding of the files.
        val_fraction: the share of train held out as validation when there is no ``val_file``.
        train_size: ``synthetic``: training sentences.
        val_size: ``synthetic``: validation sentences.
        test_size: ``synthetic``: test sentences.
        corpus_seed: ``synthetic``: the seed the sentences are generated from.
    """

    format: DataFormat = "synthetic"
    train_file: str | None = None
    val_file: str | None = None
    test_file: str | None = None
    predict_file: str | None = None
    heads: list[str] | None = None
    tag_column: str | int | None = None
    tag_scheme: Literal["keep", "iob2"] = "keep"
    text_column: str = "text"
    label_column: str = "label"
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    granularity: Literal["binary", "fine"] = "binary"
    use_subtrees: bool = False
    hub_name: str | None = None
    hub_config: str | None = None
    encoding: str = "utf-8"
    val_fraction: float = 0.1
    train_size: int = 4000
    val_size: int = 500
    test_size: int = 500
    corpus_seed: int = 0

    def check(self, key: str = "data.") -> None:
        """Fail with one line naming the option (``key`` + its name) whose value cannot work."""

        def fail(name: str, expected: str) -> None:
            raise ValueError(f"{key}{name}: expected {expected}, got {getattr(self, name)!r}")

        if self.format not in ("synthetic", *FORMATS):
            fail("format", f"one of {('synthetic', *FORMATS)}")
        if self.format not in ("synthetic", "hub") and not self.train_file:
            fail("train_file", f"a file to train on (format {self.format!r} reads files)")
        if self.format == "hub" and not self.hub_name:
            fail("hub_name", "a hub dataset id or a local folder (format 'hub')")
        if not 0 < self.val_fraction < 1:
            fail("val_fraction", "a share between 0 and 1 (exclusive)")
        if self.tag_scheme not in ("keep", "iob2"):
            fail("tag_scheme", "keep or iob2")
        if self.granularity not in SST_LABELS:
            fail("granularity", f"one of {tuple(SST_LABELS)}")
        for name in ("train_size", "val_size", "test_size"):
            if getattr(self, name) < 1:
                fail(name, "a positive number of sentences")
        try:
            if self.format == "conllu":
                ConlluTagField.parse(self.tag_column)
            elif self.format == "conll" and self.tag_column is not None:
                int(self.tag_column)
        except ValueError as error:
            conll = f"tag_column for conll must be a column index, got {self.tag_column!r}"
            raise ValueError(f"{key}tag_column: {error if self.format == 'conllu' else conll}") from None

    def file(self, split: str) -> str:
        """Where a split comes from, for error messages: its file, or the split's name."""
        key = {"train": "train_file", "validation": "val_file", "test": "test_file", "predict": "predict_file"}[split]
        return getattr(self, key) or f"the {split} split"

    def check_tags(self, column: str, tags: Sequence[Sequence[str]]) -> None:
        """Refuse training tags ``_`` in a CoNLL-U UPOS, XPOS or DEPREL column (``column``: a head's, ``tags`` for
        ``tag_column``'s): there ``_`` is a word without annotation (a file never tagged, or tagged in another column),
        and a tagger trained on it would learn to predict ``_``."""
        name = str(self.tag_column or "upos").lower() if column == "tags" else column
        if self.format != "conllu" or name not in ("upos", "xpos", "deprel"):
            return
        if untagged := sum("_" in sentence for sentence in tags):
            raise DataFormatError(
                f"{self.file('train')}: expected a {name.upper()} tag on every word, found _ (no annotation) in "
                f"{untagged} of {len(tags)} sentences; is the {name.upper()} column filled (a silver file tagged by "
                "a model trained on another column)?"
            )

    def reader(self, split: str) -> Corpus:
        """This corpus as the reader of one split sees it, and as its cache is keyed: the options its format reads,
        all others at their defaults (changing those keeps the cached files); whole sentences outside train."""
        kept = {name: getattr(self, name) for name in FORMAT_OPTIONS.get(self.format, ())}
        if split != "train":
            kept.pop("use_subtrees", None)
        return Corpus(format=self.format, **kept)

    def read(self, seed: int, cache_dir: str | None) -> DatasetDict:
        """The corpus as strings: splits ``train``, ``validation`` [, ``test``, ``predict``], columns ``tokens``
        and ``tags`` or ``label`` (or both, in the synthetic corpus)."""
        if self.format == "synthetic":
            sizes = {name: getattr(self, name) for name in ("train_size", "val_size", "test_size")}
            return load_synthetic_corpus(**sizes, seed=self.corpus_seed, cache_dir=cache_dir)
        return read_corpus(self, seed=seed, cache_dir=cache_dir)

    def options(self) -> dict[str, object]:
        """The options that apply to this corpus (its format's, its files, the sizes of a synthetic one)."""
        applying = ["format", "train_file", "val_file", "test_file", "predict_file", "heads"]
        applying += FORMAT_OPTIONS.get(self.format, ())
        applying += ["train_size", "val_size", "test_size", "corpus_seed"] if self.format == "synthetic" else []
        applying += ["val_fraction"] if self.format != "synthetic" and not self.val_file else []
        return {name: getattr(self, name) for name in applying if getattr(self, name) is not None}


CORPUS_FIELDS = tuple(field.name for field in fields(Corpus))
