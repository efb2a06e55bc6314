"""The collate function and the length-bucketing batch sampler, alone and under DDP."""

import random

import pytest
import torch

from seqmodels.data.batching import BucketBatchSampler, PadCollator, pad_chars
from seqmodels.padding import IGNORE_INDEX


def lengths_of(n: int, seed: int = 0) -> list[int]:
    """``n`` random sentence lengths in 1..40."""
    rng = random.Random(seed)
    return [rng.randint(1, 40) for _ in range(n)]


def test_collate_pads_and_returns_lengths():
    batch = PadCollator(pad_id=0)(
        [{"token_ids": [5, 6, 7], "tagger": [1, 2, 3], "classifier": 1}, {"token_ids": [8], "tagger": [4], "classifier": 0}]
    )
    assert batch["token_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["targets"]["tagger"].tolist() == [[1, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["lengths"].tolist() == [3, 1] and batch["lengths"].device.type == "cpu"
    assert batch["targets"]["classifier"].tolist() == [1, 0]


def test_collate_without_tags_or_labels():
    batch = PadCollator()([{"token_ids": [5, 6]}, {"token_ids": [7]}])
    assert set(batch) == {"token_ids", "lengths"}


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_example_once_per_epoch(shuffle):
    lengths = lengths_of(1003)
    sampler = BucketBatchSampler(lengths, batch_size=32, shuffle=shuffle, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(lengths)))


def test_bucketing_cuts_padding_to_a_few_percent():
    lengths = lengths_of(2000)

    def padding_fraction(sampler):
        """The share of padded positions in the sampler's batches."""
        real = padded = 0
        for batch in sampler:
            sizes = [lengths[i] for i in batch]
            real += sum(sizes)
            padded += max(sizes) * len(sizes)
        return 1 - real / padded

    bucketed = padding_fraction(BucketBatchSampler(lengths, 32, seed=0))
    random_batches = padding_fraction(BucketBatchSampler(lengths, 32, bucket=False, seed=0))
    assert bucketed < 0.03
    assert random_batches > 0.3


def test_shuffle_is_seeded_and_changes_each_epoch():
    lengths = lengths_of(500)
    a, b = BucketBatchSampler(lengths, 16, seed=1), BucketBatchSampler(lengths, 16, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(BucketBatchSampler(lengths, 16, seed=2)) != list(b)


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ddp_shares_are_disjoint_and_equal(num_replicas):
    lengths = lengths_of(1001)
    for epoch in range(2):
        shares = []
        for rank in range(num_replicas):
            sampler = BucketBatchSampler(lengths, 16, seed=5, num_replicas=num_replicas, rank=rank)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler)
            shares.append({i for b in batches for i in b})
            assert len(shares[-1]) == sum(len(b) for b in batches)  # no example twice on a rank
        assert len({len(list(BucketBatchSampler(lengths, 16, seed=5, num_replicas=num_replicas, rank=r))) for r in range(num_replicas)}) == 1
        for i in range(num_replicas):
            for j in range(i + 1, num_replicas):
                assert not shares[i] & shares[j]
        covered = set().union(*shares)
        assert len(covered) >= len(lengths) - num_replicas * 16  # only the few leftover batches are dropped


def test_evaluation_shares_cover_everything_once():
    lengths = lengths_of(333)
    seen = [i for rank in range(2) for b in BucketBatchSampler(lengths, 16, shuffle=False, num_replicas=2, rank=rank) for i in b]
    assert sorted(seen) == list(range(len(lengths)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler([1, 2], 0)
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], 2, num_replicas=2, rank=2)
    assert torch.is_tensor(BucketBatchSampler([1, 2], 2).lengths)


def test_pad_chars_puts_each_words_characters_at_its_place_and_zeros_elsewhere():
    """The vectorised padding against the plain definition, on random sentences of random words."""
    rng = random.Random(0)
    for _ in range(30):
        sentences = [[[rng.randint(1, 50) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 12))]
                     for _ in range(rng.randint(1, 8))]  # fmt: skip
        expected = torch.zeros(len(sentences), max(map(len, sentences)),
                               max(len(w) for s in sentences for w in s), dtype=torch.long)  # fmt: skip
        for i, sentence in enumerate(sentences):
            for j, word in enumerate(sentence):
                expected[i, j, : len(word)] = torch.tensor(word)
        assert torch.equal(pad_chars(sentences), expected)
