"""Several corpora in one stream of batches: each batch comes from one corpus, bucketed as a single corpus is.

- :class:`Corpora`: the corpora's encoded splits one after another, as one dataset; every example carries
  the heads its corpus feeds, so that its batch updates only those.
- :class:`MixedBatchSampler`: training, one corpus per step. An epoch has as many steps as the corpora
  have batches together; ``mixing`` decides which corpus each step takes its next batch from:
  ``proportional`` (every batch of every corpus once, in a seeded random order), ``round_robin`` (the
  corpora in turn) or ``temperature`` (a corpus drawn with probability proportional to its batch count
  to the power 1/T: T=1 is proportional in expectation, a large T uniform). A corpus whose batches run
  out starts its next pass, reshuffled. Every rank draws the same corpus sequence; each takes its own
  share of that corpus's batches (its :class:`BucketBatchSampler`), so the data stay disjoint.
- :class:`SequentialBatchSampler`: evaluation and prediction, corpus after corpus.

Everything is a function of the seed and the epoch, so a resumed run draws what the original would; resumed inside
an epoch, it skips the batches that the epoch had trained before the checkpoint (:func:`batches_already_trained`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from datasets import Dataset
from lightning.pytorch import Trainer
from torch.utils.data import Sampler

from seqmodels.data.batching import BucketBatchSampler

Mixing = Literal["proportional", "round_robin", "temperature"]


def batches_already_trained(trainer: Trainer | None) -> int:
    """How many of this epoch's batches a run resumed from a checkpoint saved inside the epoch (``trainer.max_steps``
    ending it there) had trained: its training loader skips them. 0 for a fresh run or one resumed at an epoch's end."""
    if trainer is None or not trainer.fit_loop.restarting:
        return 0
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return 0 if progress.is_last_batch else progress.current.completed


class Corpora(torch.utils.data.Dataset):
    """Datasets one after another, indexed globally; with several corpora, each example gains ``heads``, the
    heads its corpus feeds."""

    def __init__(self, datasets: Sequence[Dataset], heads: Sequence[tuple[str, ...]] | None) -> None:
        self.datasets, self.heads = list(datasets), heads  # heads None: one corpus, every head
        self.offsets = [0, *itertools.accumulate(len(d) for d in self.datasets)]

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's examples, fetched together (they are all of one corpus)."""
        corpus = bisect.bisect_right(self.offsets, indices[0]) - 1
        examples = self.datasets[corpus].__getitems__([i - self.offsets[corpus] for i in indices])
        if self.heads is None:
            return examples
        return [example | {"heads": self.heads[corpus]} for example in examples]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


class MixedBatchSampler(Sampler[list[int]]):
    """One corpus's batch per step, the corpus chosen by ``mixing`` (see the module docstring).

    ``samplers``: each corpus's (length-bucketed, shuffling, rank-sharded) batches; ``offsets``: where each
    corpus starts in :class:`Corpora`.
    """

    def __init__(
        self, samplers: Sequence[BucketBatchSampler], offsets: Sequence[int], mixing: Mixing, temperature: float,
        seed: int,
    ) -> None:  # fmt: skip
        self.samplers, self.offsets = list(samplers), list(offsets)
        self.mixing, self.temperature, self.seed = mixing, temperature, seed
        self.sizes = [len(sampler) for sampler in self.samplers]  # batches per pass, on this rank
        self.epoch = 0
        self.skip = 0  # batches of the next pass to leave out: those a resumed run had trained (then 0 again)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(self.sizes)

    def choices(self, epoch: int) -> list[int]:
        """The corpus of each step of ``epoch``: the same on every rank."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        steps, corpora = len(self), len(self.sizes)
        if self.mixing == "proportional":
            every = torch.tensor([c for c, size in enumerate(self.sizes) for _ in range(size)])
            return every[torch.randperm(steps, generator=generator)].tolist()
        if self.mixing == "round_robin":
            return [(epoch * steps + step) % corpora for step in range(steps)]
        weights = torch.tensor(self.sizes, dtype=torch.float64) ** (1 / self.temperature)
        return torch.multinomial(weights, steps, replacement=True, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip % len(self), 0  # a cycled shorter loader (data.step: every_corpus) wraps around
        drawn = [0] * len(self.sizes)  # batches each corpus gave in the epochs before this one
        for epoch in range(self.epoch):
            for corpus in self.choices(epoch):
                drawn[corpus] += 1
        passes: dict[tuple[int, int], list[list[int]]] = {}
        for step, corpus in enumerate(self.choices(self.epoch)):
            number, position = divmod(drawn[corpus], self.sizes[corpus])
            drawn[corpus] += 1
            if (corpus, number) not in passes:
                sampler = self.samplers[corpus]
                sampler.set_epoch(number)
                passes[corpus, number] = list(sampler)
            if step >= skip:
                yield [self.offsets[corpus] + i for i in passes[corpus, number][position]]


class SequentialBatchSampler(Sampler[list[int]]):
    """Every corpus's batches, corpus after corpus (evaluation, prediction)."""

    def __init__(self, samplers: Sequence[Sampler[list[int]]], offsets: Sequence[int]) -> None:
        self.batches = [[offset + i for i in batch] for sampler, offset in zip(samplers, offsets) for batch in sampler]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
