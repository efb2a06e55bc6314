"""The LightningDataModule: read one corpus or several, build the vocabularies from train, encode, batch."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from datasets import DatasetDict
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader

from seqmodels.data.batching import BucketBatchSampler, PadCollator
from seqmodels.data.corpus import Corpus
from seqmodels.data.embeddings import CHECKPOINT_SUFFIX, embedding_matrix, load_vectors
from seqmodels.data.mixing import Corpora, MixedBatchSampler, Mixing, SequentialBatchSampler, batches_already_trained
from seqmodels.data.fields import Field
from seqmodels.data.encoding import Numericalizer
from seqmodels.data.tasks import assign_heads, default_fields, fed_columns, written_columns
from seqmodels.data.vocab import CASES, Vocabulary, cache_path, cached, sentences_of

CPU_KEYS = ("lengths", "tokens", "heads")  # batch entries that stay on the CPU


@dataclass(eq=False, repr=False)
class SequenceDataModule(Corpus, L.LightningDataModule):
    """Sentences with the annotations the model's heads read (``fields``), as padded, length-bucketed batches.

    One corpus is given by the fields of :class:`~seqmodels.data.corpus.Corpus` (``--data.format``, the
    files, the reader options); several by ``corpora`` (``data.corpora.NAME.format`` ...), each feeding its
    own heads from one shared encoder. The fields below say how the corpora become batches.

    Args:
        corpora: several corpora by name, each with the fields of one (``format``, files, options, ``heads``).
        mixing: with several corpora, which corpus each training step takes its batch from: ``proportional``
            (each batch of each corpus once per epoch), ``round_robin`` or ``temperature`` (see ``temperature``).
        temperature: ``mixing: temperature`` draws corpus i with probability proportional to
            (its batches) ** (1 / temperature): 1 is proportional, larger values approach uniform.
        step: ``one_corpus``: a training step is one batch of one corpus (an epoch: as many steps as the
            corpora have batches); ``every_corpus``: a batch of each corpus, the losses summed (an epoch: as
            many steps as the largest corpus has batches; the others start over when they run out).
        fields: what each head of the model reads, as :class:`~seqmodels.data.fields.Field` arguments (linked from
            its config by the CLI); None: a tagger of the ``tags`` and a classifier of the ``label`` the data has.
        min_freq: tokens seen fewer times in train map to ``<unk>``.
        lowercase: look tokens up lower-cased, and give the model a case feature instead.
        char_features: give the model each token's characters (for its character CNN).
        max_word_length: characters kept per token.
        pretrained_embeddings: ``glove-6b-50d`` or a word2vec/GloVe text file, whose words that occur in the
            corpus join the vocabulary, or a checkpoint (``.ckpt``), whose words all join; the model starts from
            their vectors.
        batch_size: sentences per batch (training and evaluation).
        bucket: batch training sentences of similar length (shuffled within and across buckets).
        seed: the seed of the batch order (and of carving validation); each epoch adds its number to it.
        num_workers: DataLoader worker processes (persistent when > 0).
        cache_dir: where ``datasets`` caches the read and encoded splits.
    """

    corpora: dict[str, Corpus] | None = None
    mixing: Mixing = "proportional"
    temperature: float = 2.0
    step: Literal["one_corpus", "every_corpus"] = "one_corpus"
    fields: dict[str, dict[str, Any]] | None = None
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
        for name, corpus in self.sources.items():
            corpus.check("data." if corpus is self else f"data.corpora.{name}.")
        for name, least in (("min_freq", 1), ("max_word_length", 1), ("batch_size", 1), ("num_workers", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"data.{name}: expected at least {least}, got {getattr(self, name)!r}")
        if self.temperature <= 0:
            raise ValueError(f"data.temperature: expected a positive number, got {self.temperature!r}")

    @property
    def sources(self) -> dict[str, Corpus]:
        """The corpora by name: ``data.corpora``, or this module's own fields as the corpus ``data``."""
        if self.corpora and self.train_file is not None:
            raise ValueError("data: give one corpus (data.format, data.train_file, ...) or data.corpora, not both")
        return dict(self.corpora) if self.corpora else {"data": self}

    @cached_property
    def as_read(self) -> dict[str, DatasetDict]:
        """Each corpus as its reader gives it: splits of strings, ``tokens`` and the annotation columns."""
        return {name: corpus.read(self.seed, self.cache_dir) for name, corpus in self.sources.items()}

    @cached_property
    def head_fields(self) -> dict[str, Field]:
        """The fields of the model's heads, by head name (``fields``, or the default for the data's columns)."""
        if self.fields is not None:
            return {name: Field(**spec) for name, spec in self.fields.items()}
        return default_fields(set().union(*(read["train"].column_names for read in self.as_read.values())))

    @cached_property
    def feeds(self) -> dict[str, tuple[str, ...]]:
        """Each corpus's heads (:func:`~seqmodels.data.tasks.assign_heads`)."""
        columns = {name: set(read["train"].column_names) - {"tokens"} for name, read in self.as_read.items()}
        return assign_heads(columns, {name: corpus.heads for name, corpus in self.sources.items()}, self.head_fields)

    @cached_property
    def raw(self) -> dict[str, DatasetDict]:
        """Each corpus as ``tokens`` and a column per head it feeds, named after the head (checked:
        :func:`~seqmodels.data.tasks.fed_columns`); the predict split as ``tokens`` only (it may have no annotations,
        or classes training never saw)."""
        fields = {name: [self.head_fields[head] for head in heads] for name, heads in self.feeds.items()}
        return {name: DatasetDict({split: fed_columns(data, fields[name] if split != "predict" else [],
                                                      f"{self.sources[name].file(split)} ({name})")
                                   for split, data in corpus.items()})
                for name, corpus in self.as_read.items()}  # fmt: skip


    def _splits(self, split: str) -> dict[str, Any]:
        """Each corpus's ``split``, for the corpora that have it."""
        return {name: corpus[split] for name, corpus in self.raw.items() if split in corpus}

    @cached_property
    def vectors(self) -> dict[str, np.ndarray] | None:
        """The pretrained vectors: a checkpoint's all, others' of the words in the corpora (any split); or None."""
        if self.pretrained_embeddings is None:
            return None
        vectors = load_vectors(self.pretrained_embeddings)
        if self.pretrained_embeddings.endswith(CHECKPOINT_SUFFIX):
            return vectors
        splits = [split for corpus in self.raw.values() for split in corpus.values()]
        words = {self._form(t) for sentence in sentences_of(splits) for t in sentence}
        return {word: vectors[word] for word in sorted(words) if word in vectors}

    def _form(self, token: str) -> str:
        """The form a token is looked up in: lower-cased when ``lowercase``."""
        return token.lower() if self.lowercase else token

    @cached_property
    def vocabularies(self) -> dict[str, Vocabulary]:
        """Tokens (+ pretrained words) and chars from every corpus's train split, cases, and each head's classes
        (a vocabulary named after the head) from its corpus's train split.

        Cached as JSON beside the data, keyed on the splits' ``datasets`` fingerprints and the options, so
        that a rerun on unchanged data does not count every token again.
        """
        return cached(self._vocabulary_cache(), self._build_vocabularies)

    def _vocabulary_cache(self) -> Path | None:
        if self.cache_dir is None:
            return None
        embeddings = self.pretrained_embeddings
        if embeddings is not None and Path(embeddings).is_file():
            embeddings = f"{embeddings}:{Path(embeddings).stat().st_mtime_ns}"
        heads = sorted(map(repr, self.head_fields.values()))
        options = [self.min_freq, self.lowercase, self.char_features, embeddings, heads]
        fingerprints = {f"{name}/{split}": d._fingerprint for name, ds in self.raw.items() for split, d in ds.items()}
        return cache_path(self.cache_dir, [fingerprints, options])

    def _build_vocabularies(self) -> dict[str, Vocabulary]:
        trains = list(self._splits("train").values())
        tokens = Vocabulary.for_tokens(([self._form(t) for t in s] for s in sentences_of(trains)), self.min_freq)
        vocabs = {"tokens": tokens.extended(self.vectors) if self.vectors else tokens}
        if self.char_features:
            vocabs["chars"] = Vocabulary.for_chars(sentences_of(trains))
        if self.lowercase:
            vocabs["cases"] = Vocabulary(CASES)
        for name, corpus in self.raw.items():
            for field in (self.head_fields[head] for head in self.feeds[name]):
                if field.kind != "classes" or field.column is None:
                    continue
                self.sources[name].check_tags(field.column, corpus["train"][field.name])
                vocabs[field.name] = field.training_classes(corpus["train"][field.name], self.sources[name])
                for split in ("validation", "test") if field.unseen == "error" else ():
                    if split in corpus:
                        values = field.classes(corpus[split][field.name]).itos
                        where = f"{self.sources[name].file(split)}: the {field.name} head's classes"
                        vocabs[field.name].check_known(values, where)
        return vocabs

    @property
    def vocab(self) -> dict[str, list[str]]:
        """The vocabularies as plain lists, the form the model keeps in its checkpoint."""
        return {name: v.itos for name, v in self.vocabularies.items()}

    @property
    def data_options(self) -> dict[str, Any]:
        """The options that decide what the model reads and what its tags mean, kept in its checkpoint so that
        prediction reads new text as training did and writes the tags back where they came from."""
        columns = written_columns(self.sources, self.feeds, self.head_fields)
        return {"max_word_length": self.max_word_length, "lowercase": self.lowercase, "columns": columns}

    @property
    def initial_embeddings(self) -> Tensor | None:
        """(vocab size, D) pretrained vectors for the model's word embeddings, or None."""
        return embedding_matrix(self.vocabularies["tokens"], self.vectors, seed=self.seed) if self.vectors else None

    @cached_property
    def encoded(self) -> dict[str, DatasetDict]:
        """Every corpus's splits as ids (cached by ``datasets``, keyed on the data and the vocabularies)."""
        numericalize = Numericalizer(self.vocab, self.max_word_length, list(self.head_fields.values()))
        encoded = {}
        for name, corpus in self.raw.items():
            splits = {}
            for split, dataset in corpus.items():
                drop = [c for c in dataset.column_names if c != "tokens"]  # tokens: for reports
                splits[split] = dataset.map(numericalize, batched=True, remove_columns=drop, desc=f"Encoding {split}")
            encoded[name] = DatasetDict(splits)
        return encoded

    @property
    def has_test(self) -> bool:
        return any("test" in corpus for corpus in self.raw.values())

    @property
    def predict_split(self) -> str:
        """What ``train.py predict`` predicts: the ``predict_file`` (every corpus's), else the test split."""
        return "predict" if any("predict" in corpus for corpus in self.raw.values()) else "test"

    def setup(self, stage: str) -> None:
        splits = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in splits.get(stage, (self.predict_split,)):
            if not any(split in corpus for corpus in self.encoded.values()):
                raise ValueError(f"stage '{stage}' needs a '{split}' split, but no corpus has one")

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> dict:
        """Move the tensors but ``lengths``, which packing needs on the CPU (no device round trip), and leave the
        words (``tokens``) and ``heads`` alone: walking their lists would cost every step. A batch of each
        corpus (``step: every_corpus``) moves corpus by corpus."""
        if "token_ids" not in batch:
            return {name: self.transfer_batch_to_device(b, device, dataloader_idx) for name, b in batch.items()}
        kept = {key: batch.pop(key) for key in CPU_KEYS if key in batch}
        return {**super().transfer_batch_to_device(batch, device, dataloader_idx), **kept}

    def _samplers(self, split: str, names: list[str], shuffle: bool, bucket: bool) -> list[BucketBatchSampler]:
        """Each corpus's batches of ``split``: length-bucketed, this rank's share under DDP. The lengths are read as
        one Arrow column (a dataset's column is read row by row: 1.6 s for SST's phrases, at every fit)."""
        replicas, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        lengths = [self.encoded[name][split].with_format("arrow")["length"].to_numpy() for name in names]
        return [BucketBatchSampler(column, self.batch_size, shuffle, bucket, self.seed, replicas, rank)
                for column in lengths]  # fmt: skip

    def _loader(self, split: str, names: list[str], batch_sampler: Any, words: bool) -> DataLoader:
        """A DataLoader over ``names``' ``split`` (their examples one after another: :class:`Corpora`); ``words=False``
        leaves out the words themselves, which only reports read."""
        datasets = [self.encoded[name][split] for name in names]
        datasets = [d.with_format(columns=[c for c in d.column_names if c != "length" and (words or c != "tokens")])
                    for d in datasets]  # fmt: skip
        heads = [self.feeds[name] for name in names] if len(self.sources) > 1 else None
        return DataLoader(
            Corpora(datasets, heads),
            batch_sampler=batch_sampler,
            collate_fn=PadCollator(self.vocabularies["tokens"].stoi["<pad>"], list(self.head_fields.values())),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=bool(self.trainer and self.trainer.strategy.root_device.type == "cuda"),
            # Its own generator: starting an epoch must not draw from torch's global one (dropout's), or a
            # resumed run (which validates before it trains) would drop out other units than the original.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        names = [name for name, corpus in self.encoded.items() if "train" in corpus]
        if self.step == "every_corpus" and len(names) > 1:
            loaders = {name: self.train_loader([name]) for name in names}
            return CombinedLoader(loaders, mode="max_size_cycle")
        return self.train_loader(names)

    def train_loader(self, names: list[str]) -> DataLoader:
        samplers = self._samplers("train", names, shuffle=True, bucket=self.bucket)
        offsets = [0, *itertools.accumulate(len(self.encoded[name]["train"]) for name in names)]
        mixed = MixedBatchSampler(samplers, offsets, self.mixing, self.temperature, self.seed)
        mixed.skip = batches_already_trained(self.trainer)
        return self._loader("train", names, mixed, words=False)

    def _evaluation_loader(self, split: str, bucket: bool) -> DataLoader:
        """Every corpus's ``split``, corpus after corpus; the heads' metrics come out per corpus."""
        names = [name for name, corpus in self.encoded.items() if split in corpus]
        samplers = self._samplers(split, names, shuffle=False, bucket=bucket)
        offsets = [0, *itertools.accumulate(len(self.encoded[name][split]) for name in names)]
        return self._loader(split, names, SequentialBatchSampler(samplers, offsets), words=True)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("validation", bucket=True)

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test", bucket=True)

    def predict_dataloader(self) -> DataLoader:
        """The predict split, corpus after corpus, batched by length; ``train.py predict`` writes the records back
        in file order (:class:`~seqmodels.callbacks.PredictionsWriter`)."""
        return self._evaluation_loader(self.predict_split, bucket=True)
