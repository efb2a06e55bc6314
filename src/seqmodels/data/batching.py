"""Batching: a collate function that pads, and a length-bucketing batch sampler that is DDP-aware."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Sampler

from seqmodels.data.fields import DEFAULT_FIELDS, Field


class PadCollator:
    """Pad a list of encoded examples into one batch.

    Each example has ``token_ids`` (list[int]) and, when the data has them, ``char_ids`` (a list of ids per token),
    ``case_ids``, and each head's targets under its name (``fields``: by default the ``tagger`` and ``classifier``
    a data module without a model has). The batch has ``token_ids`` (B, T), ``lengths`` (B,) on the CPU,
    ``char_ids`` (B, T, W), ``case_ids`` (B, T) and ``targets``: each head's, padded by its field.
    """

    def __init__(self, pad_id: int = 0, fields: Sequence[Field] = DEFAULT_FIELDS) -> None:
        self.pad_id = pad_id
        self.fields = [field for field in fields if field.column is not None]

    def __call__(self, examples: Sequence[dict]) -> dict[str, Any]:
        tokens = [torch.as_tensor(ex["token_ids"], dtype=torch.long) for ex in examples]
        batch: dict[str, Any] = {
            "token_ids": pad_sequence(tokens, batch_first=True, padding_value=self.pad_id),  # (B, T)
            "lengths": torch.tensor([len(t) for t in tokens], dtype=torch.long),  # (B,)
        }
        if "tokens" in examples[0]:  # the words themselves, for reports (not moved to the device)
            batch["tokens"] = [ex["tokens"] for ex in examples]
        if "char_ids" in examples[0]:
            batch["char_ids"] = pad_chars([ex["char_ids"] for ex in examples])  # (B, T, W)
        if "case_ids" in examples[0]:
            cases = [torch.as_tensor(ex["case_ids"], dtype=torch.long) for ex in examples]
            batch["case_ids"] = pad_sequence(cases, batch_first=True, padding_value=0)  # (B, T)
        targets = {f.name: f.pad([ex[f.name] for ex in examples]) for f in self.fields if f.name in examples[0]}
        if targets:
            batch["targets"] = targets  # (B, T) or (B,) each
        if "heads" in examples[0]:  # with several corpora: the heads this batch's corpus feeds
            batch["heads"] = examples[0]["heads"]
        return batch


def pad_chars(sentences: Sequence[Sequence[Sequence[int]]]) -> Tensor:
    """Character ids per token per sentence -> (B, T, W), 0-padded (W = the longest word in the batch). Built from
    one flat tensor of every character (no Python loop per word: this runs for every batch)."""
    sentence_lengths = torch.tensor([len(s) for s in sentences])  # (B,)
    word_lengths = torch.tensor([len(word) for s in sentences for word in s])  # (N,): N = the batch's words
    flat = torch.tensor([c for s in sentences for word in s for c in word], dtype=torch.long)  # (C,) characters
    word_of = torch.repeat_interleave(torch.arange(len(word_lengths)), word_lengths)  # (C,)
    position = torch.arange(len(flat)) - (word_lengths.cumsum(0) - word_lengths)[word_of]  # (C,) within its word
    words = flat.new_zeros(len(word_lengths), int(word_lengths.max()))  # (N, W)
    words[word_of, position] = flat
    real = torch.arange(int(sentence_lengths.max())) < sentence_lengths[:, None]  # (B, T)
    char_ids = words.new_zeros(*real.shape, words.size(1))  # (B, T, W)
    char_ids[real] = words
    return char_ids


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length, so that little of each batch is padding.

    Each epoch, examples are shuffled, sorted by length (the shuffle breaks ties), cut into batches,
    and the batches are shuffled, all from ``seed + epoch``: every rank draws the same order.
    ``bucket=False`` skips the sort (plain random batches); ``shuffle=False`` skips both shuffles.
    Under DDP (``num_replicas > 1``) rank ``r`` takes every ``num_replicas``-th batch starting at
    ``r``; while shuffling, the few batches left over are dropped so that every rank gets the
    same number (a different few each epoch). With ``shuffle=False`` (evaluation), batches keep
    sorted order and none are dropped, so the last ranks may get one batch fewer.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.lengths = torch.tensor(lengths, dtype=torch.long)  # a copy: an Arrow column's numbers are read-only
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket = bucket
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch; changes the shuffle."""
        self.epoch = epoch

    def _all_batches(self) -> list[Tensor]:
        """The epoch's batches, as index tensors (a list of ints each would cost ~36 bytes an example)."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.bucket:  # a stable sort keeps the shuffle as the tie-break
            order = order[torch.sort(self.lengths[order], stable=True).indices]
        batches = list(order.split(self.batch_size))
        if not self.shuffle:
            return batches
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        usable = len(batches) - len(batches) % self.num_replicas
        return [batches[i] for i in permutation[:usable]]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._all_batches()[self.rank :: self.num_replicas]:
            yield batch.tolist()

    def __len__(self) -> int:
        num_batches = math.ceil(len(self.lengths) / self.batch_size)
        if self.shuffle:
            return num_batches // self.num_replicas
        return len(range(self.rank, num_batches, self.num_replicas))
