"""The LightningDataModule: load a corpus, build vocabularies from train, encode, batch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from datasets import DatasetDict
from torch import Tensor
from torch.utils.data import DataLoader

from seqmodels.data.batching import BucketBatchSampler, PadCollator
from seqmodels.data.embeddings import embedding_matrix, load_vectors
from seqmodels.data.corpus import Corpus
from seqmodels.data.vocab import CASES, Numericalizer, Vocabulary, from_lists

CPU_KEYS = ("lengths", "tokens")  # batch entries that stay on the CPU
STAGE_SPLITS = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}


@dataclass(eq=False, repr=False)
class SequenceDataModule(Corpus, L.LightningDataModule):
    """Sentences with per-token ``tags`` and/or a sentence ``label``, as padded, length-bucketed batches.

    The corpus is given by the fields of :class:`~seqmodels.data.corpus.Corpus` (``format``, the files and
    the reader options, as ``--data.format`` ...); the fields below say how it becomes batches.

    Args:
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

    min_freq: int = 1
    lowercase: bool = False
    char_features: bool = False
    max_word_length: int = 20
    pretrained_embeddings: str | None = None
    batch_size: int = 32
    bucket: bool = True
    seed: int = 0
    num_workers: int = 0
    cache_dir: str | None = "data/cache"

    def __post_init__(self) -> None:
        L.LightningDataModule.__init__(self)
        self.check()
        for name, least in (("min_freq", 1), ("max_word_length", 1), ("batch_size", 1), ("num_workers", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"data.{name}: expected at least {least}, got {getattr(self, name)!r}")

    @cached_property
    def raw(self) -> DatasetDict:
        """The corpus as strings: columns ``tokens`` and, per task, ``tags`` and ``label``."""
        return self.read(self.seed, self.cache_dir)

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
        for split, file in (("validation", self.val_file), ("test", self.test_file)):
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
        tags = {"format": self.format, "column": self.tag_column, "scheme": self.tag_scheme}
        return {
            "max_word_length": self.max_word_length,
            "lowercase": self.lowercase,
            "tags": tags if "tags" in self.raw["train"].column_names else None,
        }

    @property
    def initial_embeddings(self) -> Tensor | None:
        """(vocab size, D) pretrained vectors for the model's word embeddings, or None."""
        return embedding_matrix(self.vocabularies["tokens"], self.vectors, seed=self.seed) if self.vectors else None

    @cached_property
    def encoded(self) -> DatasetDict:
        """Every split as ids (cached by ``datasets``, keyed on the data and the vocabularies)."""
        raw = DatasetDict(self.raw)
        if "predict" in raw:  # what is predicted needs no targets (its labels may be ones training never saw)
            raw["predict"] = raw["predict"].remove_columns([c for c in raw["predict"].column_names if c != "tokens"])
        return DatasetDict({
            split: dataset.map(
                Numericalizer(self.vocab, self.max_word_length),
                batched=True,
                remove_columns=[c for c in dataset.column_names if c != "tokens"],  # tokens: for reports
                desc=f"Encoding {split}",
            )
            for split, dataset in raw.items()
        })

    @property
    def has_test(self) -> bool:
        return "test" in self.raw

    def setup(self, stage: str) -> None:
        for split in STAGE_SPLITS[stage] if stage != "predict" else (self.predict_split,):
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

    @property
    def predict_split(self) -> str:
        """What ``train.py predict`` predicts: the ``predict_file``, else the test split."""
        return "predict" if "predict" in self.raw else "test"

    def predict_dataloader(self) -> DataLoader:
        """The predict split in file order, so that prediction ``i`` belongs to sentence ``i``."""
        return self._dataloader(self.predict_split, shuffle=False, bucket=False)
