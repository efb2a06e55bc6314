"""The LightningDataModule: load a corpus, build vocabularies from train, encode, batch."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from datasets import DatasetDict
from torch import Tensor
from torch.utils.data import DataLoader

from seqmodels.data.batching import BucketBatchSampler, PadCollator
from seqmodels.data.embeddings import embedding_matrix, load_vectors
from seqmodels.data.readers import read_corpus
from seqmodels.data.synthetic import load_synthetic_corpus
from seqmodels.data.vocab import CASES, Numericalizer, Vocabulary, from_lists

DataFormat = Literal["synthetic", "conllu", "conll", "label_text", "csv", "tsv", "jsonl", "parquet", "sst_trees", "hub"]
CPU_KEYS = ("lengths", "tokens")  # batch entries that stay on the CPU
STAGE_SPLITS = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",), "predict": ("test",)}


class SequenceDataModule(L.LightningDataModule):
    """Sentences with per-token ``tags`` and/or a sentence ``label``, as padded, length-bucketed batches.

    Args:
        format: ``synthetic`` (the embedded corpus the project generates) or a file format of
            :func:`~seqmodels.data.readers.read_corpus`: ``conllu``, ``conll``, ``label_text``, ``csv``,
            ``tsv``, ``jsonl``, ``parquet``, ``sst_trees`` or ``hub``.
        train_file, val_file, test_file: the files to read (val and test optional; a missing
            validation split is carved from train with ``val_fraction``).
        tag_column ... encoding: the reader's options (see :func:`~seqmodels.data.readers.read_corpus`).
        train_size, val_size, test_size, corpus_seed: the synthetic corpus's split sizes and seed.
        min_freq: tokens seen fewer times in train map to ``<unk>``.
        lowercase: look tokens up lower-cased, and give the model a case feature instead.
        char_features: give the model each token's characters (for its character CNN).
        max_word_length: characters kept per token.
        pretrained_embeddings: ``glove-6b-50d`` or a word2vec/GloVe text file; its words that occur
            in the corpus join the vocabulary, and the model starts from their vectors.
        batch_size: sentences per batch (training and evaluation).
        bucket: batch training sentences of similar length (shuffled within and across buckets).
        seed: the seed of the batch order (and of carving validation); each epoch adds its number to it.
        num_workers: DataLoader worker processes (persistent when > 0).
        cache_dir: where ``datasets`` caches the read and encoded splits.
    """

    def __init__(
        self,
        format: DataFormat = "synthetic",
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        tag_column: str | int | None = None,
        tag_scheme: Literal["keep", "iob2"] = "keep",
        text_column: str = "text",
        label_column: str = "label",
        tokens_column: str = "tokens",
        tags_column: str = "tags",
        granularity: Literal["binary", "fine"] = "binary",
        use_subtrees: bool = False,
        hub_name: str | None = None,
        hub_config: str | None = None,
        encoding: str = "utf-8",
        val_fraction: float = 0.1,
        train_size: int = 4000,
        val_size: int = 500,
        test_size: int = 500,
        corpus_seed: int = 0,
        min_freq: int = 1,
        lowercase: bool = False,
        char_features: bool = False,
        max_word_length: int = 20,
        pretrained_embeddings: str | None = None,
        batch_size: int = 32,
        bucket: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        cache_dir: str | None = "data/cache",
    ) -> None:
        super().__init__()
        self.format = format
        self.files = {"train_file": train_file, "val_file": val_file, "test_file": test_file}
        self.reader_options = {
            "tag_column": tag_column,
            "tag_scheme": tag_scheme,
            "text_column": text_column,
            "label_column": label_column,
            "tokens_column": tokens_column,
            "tags_column": tags_column,
            "granularity": granularity,
            "use_subtrees": use_subtrees,
            "hub_name": hub_name,
            "hub_config": hub_config,
            "encoding": encoding,
            "val_fraction": val_fraction,
        }
        self.synthetic_sizes = {"train_size": train_size, "val_size": val_size, "test_size": test_size}
        self.corpus_seed = corpus_seed
        self.min_freq = min_freq
        self.lowercase = lowercase
        self.char_features = char_features
        self.max_word_length = max_word_length
        self.pretrained_embeddings = pretrained_embeddings
        self.batch_size = batch_size
        self.bucket = bucket
        self.seed = seed
        self.num_workers = num_workers
        self.cache_dir = cache_dir

    @cached_property
    def raw(self) -> DatasetDict:
        """The corpus as strings: columns ``tokens`` and, per task, ``tags`` and ``label``."""
        if self.format == "synthetic":
            return load_synthetic_corpus(**self.synthetic_sizes, seed=self.corpus_seed, cache_dir=self.cache_dir)
        return read_corpus(self.format, **self.files, **self.reader_options, seed=self.seed, cache_dir=self.cache_dir)

    @cached_property
    def vectors(self) -> dict[str, np.ndarray] | None:
        """The pretrained vectors of the words that occur in the corpus (any split), or None."""
        if self.pretrained_embeddings is None:
            return None
        vectors = load_vectors(self.pretrained_embeddings)
        words = {self._form(t) for split in self.raw.values() for sentence in split["tokens"] for t in sentence}
        return {word: vectors[word] for word in sorted(words) if word in vectors}

    def _form(self, token: str) -> str:
        """The form a token is looked up in: lower-cased when ``lowercase``."""
        return token.lower() if self.lowercase else token

    @cached_property
    def vocabularies(self) -> dict[str, Vocabulary]:
        """Tokens (+ pretrained words), chars, cases, tags, labels: as the data and options call for, from train.

        Cached as JSON beside the data, keyed on the splits' ``datasets`` fingerprints and the options, so
        that a rerun on unchanged data does not count every token again.
        """
        path = self._vocabulary_cache()
        if path is not None and path.is_file():
            return from_lists(json.loads(path.read_text(encoding="utf-8")))
        vocabs = self._build_vocabularies()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps({name: v.itos for name, v in vocabs.items()}), encoding="utf-8")
            partial.replace(path)  # atomic: a crash never leaves a half-written cache
        return vocabs

    def _vocabulary_cache(self) -> Path | None:
        if self.cache_dir is None:
            return None
        embeddings = self.pretrained_embeddings
        if embeddings is not None and Path(embeddings).is_file():
            embeddings = f"{embeddings}:{Path(embeddings).stat().st_mtime_ns}"
        options = [self.min_freq, self.lowercase, self.char_features, embeddings]
        fingerprints = {split: dataset._fingerprint for split, dataset in self.raw.items()}
        key = hashlib.sha256(json.dumps([fingerprints, options]).encode()).hexdigest()[:16]
        return Path(self.cache_dir) / "vocabularies" / f"{key}.json"

    def _build_vocabularies(self) -> dict[str, Vocabulary]:
        train = self.raw["train"]
        tokens = Vocabulary.for_tokens(([self._form(t) for t in s] for s in train["tokens"]), self.min_freq)
        vocabs = {"tokens": tokens.extended(self.vectors) if self.vectors else tokens}
        if self.char_features:
            vocabs["chars"] = Vocabulary.for_chars(train["tokens"])
        if self.lowercase:
            vocabs["cases"] = Vocabulary(CASES)
        if "tags" in train.column_names:
            vocabs["tags"] = Vocabulary.for_labels(tag for sentence in train["tags"] for tag in sentence)
        if "label" in train.column_names:
            vocabs["labels"] = Vocabulary.for_labels(train["label"])
        for split, file in (("validation", self.files["val_file"]), ("test", self.files["test_file"])):
            if split not in self.raw:
                continue
            where = f"{file}: the {split} split's" if file else f"the {split} split's"  # names the file to fix
            if "tags" in vocabs:
                vocabs["tags"].check_known((t for s in self.raw[split]["tags"] for t in s), f"{where} tags")
            if "labels" in vocabs:
                vocabs["labels"].check_known(self.raw[split]["label"], f"{where} labels")
        return vocabs

    @property
    def vocab(self) -> dict[str, list[str]]:
        """The vocabularies as plain lists, the form the model keeps in its checkpoint."""
        return {name: v.itos for name, v in self.vocabularies.items()}

    @property
    def data_options(self) -> dict[str, Any]:
        """The options that decide what the model reads and what its tags mean, kept in its checkpoint so that
        prediction reads new text as training did and writes the tags back where they came from."""
        return {
            "max_word_length": self.max_word_length,
            "lowercase": self.lowercase,
            "format": self.format,
            "tag_column": self.reader_options["tag_column"],
            "tag_scheme": self.reader_options["tag_scheme"],
        }

    @property
    def initial_embeddings(self) -> Tensor | None:
        """(vocab size, D) pretrained vectors for the model's word embeddings, or None."""
        return embedding_matrix(self.vocabularies["tokens"], self.vectors, seed=self.seed) if self.vectors else None

    @cached_property
    def encoded(self) -> DatasetDict:
        """Every split as ids (cached by ``datasets``, keyed on the data and the vocabularies)."""
        return self.raw.map(
            Numericalizer(self.vocab, self.max_word_length),
            batched=True,
            remove_columns=[c for c in self.raw["train"].column_names if c != "tokens"],  # tokens: for reports
            desc="Encoding",
        )

    @property
    def has_test(self) -> bool:
        return "test" in self.raw

    def setup(self, stage: str) -> None:
        for split in STAGE_SPLITS[stage]:
            if split not in self.encoded:
                raise ValueError(f"stage '{stage}' needs a '{split}' split, but the corpus has {list(self.encoded)}")

    def transfer_batch_to_device(self, batch: dict[str, Tensor], device: torch.device, dataloader_idx: int) -> dict:
        """Move the tensors but ``lengths``, which packing needs on the CPU (no device round trip), and leave the
        words (``tokens``) alone: walking their nested lists would cost every step."""
        kept = {key: batch.pop(key) for key in CPU_KEYS if key in batch}
        return {**super().transfer_batch_to_device(batch, device, dataloader_idx), **kept}

    def _dataloader(self, split: str, shuffle: bool, bucket: bool, words: bool = True) -> DataLoader:
        """Batches of ``split``; ``words=False`` leaves out the words themselves, which only reports read."""
        dataset = self.encoded[split]
        columns = [c for c in dataset.column_names if c != "length" and (words or c != "tokens")]
        trainer = self.trainer
        sampler = BucketBatchSampler(
            dataset["length"],
            self.batch_size,
            shuffle=shuffle,
            bucket=bucket,
            seed=self.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        return DataLoader(
            dataset.with_format(columns=columns),
            batch_sampler=sampler,
            collate_fn=PadCollator(pad_id=self.vocabularies["tokens"].stoi["<pad>"]),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=bool(trainer and trainer.strategy.root_device.type == "cuda"),
            # Its own generator: starting an epoch must not draw from torch's global one (dropout's), or a
            # resumed run (which validates before it trains) would drop out other units than the original.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._dataloader("train", shuffle=True, bucket=self.bucket, words=False)

    def val_dataloader(self) -> DataLoader:
        return self._dataloader("validation", shuffle=False, bucket=True)

    def test_dataloader(self) -> DataLoader:
        return self._dataloader("test", shuffle=False, bucket=True)

    def predict_dataloader(self) -> DataLoader:
        """The test split in file order, so that prediction ``i`` belongs to sentence ``i``."""
        return self._dataloader("test", shuffle=False, bucket=False)
