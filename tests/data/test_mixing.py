"""Mixing several corpora: which corpus each step draws, every batch seen, the same order on every rank."""

import collections
import random

import pytest

from seqmodels.data.batching import BucketBatchSampler
from seqmodels.data.mixing import MixedBatchSampler, SequentialBatchSampler

SIZES = (200, 40, 100)  # examples per corpus
BATCH = 10


def mixed(mixing: str, rank: int = 0, replicas: int = 1, temperature: float = 2.0) -> MixedBatchSampler:
    rng = random.Random(0)
    samplers = [BucketBatchSampler([rng.randint(1, 30) for _ in range(n)], BATCH, seed=1, num_replicas=replicas,
                                   rank=rank) for n in SIZES]  # fmt: skip
    offsets = [0, SIZES[0], SIZES[0] + SIZES[1]]
    return MixedBatchSampler(samplers, offsets, mixing, temperature, seed=3)


def corpus_of(batch: list[int]) -> int:
    return 0 if batch[0] < SIZES[0] else 1 if batch[0] < SIZES[0] + SIZES[1] else 2


def test_proportional_takes_every_batch_of_every_corpus_once_per_epoch_interleaved():
    sampler = mixed("proportional")
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == sum(SIZES) // BATCH
        assert sorted(i for batch in batches for i in batch) == list(range(sum(SIZES)))
        assert len({corpus_of(batch) for batch in batches}) == 3 and all(len({corpus_of([i]) for i in b}) == 1
                                                                         for b in batches)  # fmt: skip
        corpora = [corpus_of(batch) for batch in batches]
        assert corpora != sorted(corpora)  # interleaved, not corpus after corpus


def test_round_robin_takes_the_corpora_in_turn_and_small_ones_start_over():
    sampler = mixed("round_robin")
    batches = list(sampler)
    assert [corpus_of(b) for b in batches[:6]] == [0, 1, 2, 0, 1, 2]
    small = [b for b in batches if corpus_of(b) == 1]  # 4 batches per pass: drawn 11 times, nearly 3 passes
    assert len(small) == 11
    for start in (0, 4):  # each pass (reshuffled) covers the corpus once
        assert sorted(i for b in small[start : start + 4] for i in b) == list(range(SIZES[0], SIZES[0] + SIZES[1]))


def test_temperature_flattens_the_corpus_sizes():
    counts = collections.Counter()
    sampler = mixed("temperature", temperature=2.0)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        counts.update(corpus_of(batch) for batch in sampler)
    shares = [counts[c] / sum(counts.values()) for c in range(3)]
    expected = [n**0.5 / sum(m**0.5 for m in (20, 4, 10)) for n in (20, 4, 10)]  # batches per corpus ** (1 / T)
    assert shares == pytest.approx(expected, abs=0.03)


def test_an_epoch_is_a_function_of_the_seed_and_its_number_so_a_resumed_run_draws_the_same():
    first = mixed("temperature")
    for epoch in range(4):
        first.set_epoch(epoch)
        drawn = list(first)
    resumed = mixed("temperature")
    resumed.set_epoch(3)
    assert list(resumed) == drawn


@pytest.mark.parametrize("mixing", ["proportional", "round_robin", "temperature"])
def test_a_run_resumed_inside_an_epoch_skips_the_batches_it_had_trained_once(mixing):
    sampler = mixed(mixing)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.skip = 7
    assert list(sampler) == whole[7:]
    assert list(sampler) == whole  # the next pass (a shorter cycled loader's, or a new epoch's) is whole again
    sampler.skip = len(whole) + 3  # a shorter loader cycled within the epoch: it wraps around
    assert list(sampler) == whole[3:]


def test_every_rank_draws_the_same_corpus_sequence_and_its_own_examples():
    ranks = [mixed("proportional", rank=r, replicas=2) for r in range(2)]
    for epoch in range(2):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        zero, one = (list(sampler) for sampler in ranks)
        assert [corpus_of(b) for b in zero] == [corpus_of(b) for b in one] and len(zero) == len(one)
        assert not {i for b in zero for i in b} & {i for b in one for i in b}


def test_evaluation_goes_corpus_after_corpus():
    samplers = [BucketBatchSampler(list(range(1, n + 1)), BATCH, shuffle=False) for n in (25, 12)]
    batches = list(SequentialBatchSampler(samplers, [0, 25]))
    assert [b[0] >= 25 for b in batches] == [False, False, False, True, True]
    assert sorted(i for b in batches for i in b) == list(range(37))
