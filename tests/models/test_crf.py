"""The CRF against brute force: its loss, its Viterbi decoding, padding, and BIO constraints."""

import itertools

import pytest
import torch
from helpers import padded_batch

from seqmodels.models.crf import CRF, bio_allowed_transitions
from seqmodels.padding import IGNORE_INDEX

BIO_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_crf(num_tags: int, allowed=None, seed: int = 0) -> CRF:
    """A CRF in float64 with random (non-zero) start, transition and end scores."""
    torch.manual_seed(seed)
    crf = CRF(num_tags, allowed).double()
    for parameter in crf.parameters():
        torch.nn.init.normal_(parameter)
    return crf


def random_batch(lengths: list[int], num_tags: int, pad_to: int | None = None, seed: int = 0):
    """Emissions (B, T, C), tags (B, T) with IGNORE_INDEX at padding, and the mask (B, T)."""
    tags, _ = padded_batch(lengths, range(num_tags), pad_to, padding=IGNORE_INDEX, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(*tags.shape, num_tags, generator=generator, dtype=torch.float64)
    return emissions, tags, tags != IGNORE_INDEX


def sequence_score(crf: CRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> torch.Tensor:
    """The score of one sentence's tag sequence, written out as in the CRF's definition."""
    start, transitions, end = crf._scores()
    score = start[tags[0]] + end[tags[-1]]
    for t, tag in enumerate(tags):
        score = score + emissions[t, tag]
        if t > 0:
            score = score + transitions[tags[t - 1], tag]
    return score


def all_sequences(crf: CRF, emissions: torch.Tensor, length: int, allowed_only: bool = False):
    """Every tag sequence of ``length`` (only the allowed ones if asked) with its score."""
    for tags in itertools.product(range(crf.num_tags), repeat=length):
        if allowed_only and not is_allowed(crf, tags):
            continue
        yield tags, sequence_score(crf, emissions, tags)


def is_allowed(crf: CRF, tags) -> bool:
    """Whether the constraints allow the sequence: its start, every transition and its end."""
    return bool(
        crf.allowed_start[tags[0]]
        and crf.allowed_end[tags[-1]]
        and all(crf.allowed_transitions[a, b] for a, b in zip(tags, tags[1:]))
    )


def brute_force_nll(crf: CRF, emissions, tags, mask, allowed_only: bool = False) -> torch.Tensor:
    """The mean negative log-likelihood of the gold tags, the partition function summed over every sequence."""
    losses = []
    for row in range(len(emissions)):
        n = int(mask[row].sum())
        scores = torch.stack([s for _, s in all_sequences(crf, emissions[row, :n], n, allowed_only)])
        gold = tuple(tags[row, :n].tolist())
        losses.append(torch.logsumexp(scores, 0) - sequence_score(crf, emissions[row, :n], gold))
    return torch.stack(losses).mean()


def brute_force_decode(crf: CRF, emissions, mask) -> torch.Tensor:
    """Each sentence's best-scoring sequence, found by scoring all of them; IGNORE_INDEX at padding."""
    best = torch.full(mask.shape, IGNORE_INDEX)
    for row in range(len(emissions)):
        n = int(mask[row].sum())
        tags, _ = max(all_sequences(crf, emissions[row, :n], n), key=lambda pair: pair[1])
        best[row, :n] = torch.tensor(tags)
    return best


@pytest.mark.parametrize("lengths", [[4, 2, 3, 1], [1], [3], [1, 1]])
def test_nll_and_viterbi_match_brute_force(lengths):
    crf = random_crf(3)
    emissions, tags, mask = random_batch(lengths, 3)
    torch.testing.assert_close(crf(emissions, tags, mask), brute_force_nll(crf, emissions, tags, mask))
    assert torch.equal(crf.decode(emissions, mask), brute_force_decode(crf, emissions, mask))


def test_more_padding_changes_nothing():
    crf = random_crf(3)
    emissions, tags, mask = random_batch([4, 2, 3], 3, pad_to=4)
    padded, padded_tags, padded_mask = random_batch([4, 2, 3], 3, pad_to=7)
    padded[:, :4] = emissions  # same real tokens, three more padded steps with random scores
    padded_tags[:, :4] = tags
    torch.testing.assert_close(crf(padded, padded_tags, padded_mask), crf(emissions, tags, mask))
    decoded = crf.decode(padded, padded_mask)
    assert torch.equal(decoded[:, :4], crf.decode(emissions, mask))
    assert (decoded[:, 4:] == IGNORE_INDEX).all()


def test_bio_allowed_transitions():
    start, transitions, end = bio_allowed_transitions(BIO_TAGS)
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()
    # Rows: previous tag; columns: next tag. I-PER only after B-PER / I-PER, I-LOC only after B-LOC / I-LOC.
    assert transitions[:, 2].tolist() == [False, True, True, False, False]
    assert transitions[:, 4].tolist() == [False, False, False, True, True]
    assert transitions[:, [0, 1, 3]].all()


def test_bio_constraints_in_loss_and_decoding():
    crf = random_crf(len(BIO_TAGS), bio_allowed_transitions(BIO_TAGS))
    emissions, _, mask = random_batch([4, 3, 1, 2], len(BIO_TAGS), seed=1)
    emissions[..., [2, 4]] += 5.0  # favour I- tags, so that an unconstrained decoder would use them badly
    # Allowed gold sequences: B-PER I-PER O B-LOC / B-LOC I-LOC I-LOC / O / B-PER B-LOC.
    tags = torch.tensor([[1, 2, 0, 3], [3, 4, 4, -100], [0, -100, -100, -100], [1, 3, -100, -100]])

    expected = brute_force_nll(crf, emissions, tags, mask, allowed_only=True)
    torch.testing.assert_close(crf(emissions, tags, mask), expected)

    decoded = crf.decode(emissions, mask)
    for row, n in enumerate(mask.sum(1).tolist()):
        assert is_allowed(crf, decoded[row, :n].tolist()), [BIO_TAGS[i] for i in decoded[row, :n]]
    assert torch.equal(decoded, brute_force_decode(crf, emissions, mask))


def test_gradient_reaches_emissions_and_allowed_scores_only():
    crf = random_crf(len(BIO_TAGS), bio_allowed_transitions(BIO_TAGS)).float()
    emissions, tags, mask = random_batch([3, 2], len(BIO_TAGS))
    emissions = emissions.float().requires_grad_()
    tags = torch.tensor([[1, 2, 0], [3, 4, IGNORE_INDEX]])
    crf(emissions, tags, mask).backward()
    assert emissions.grad[mask].abs().sum() > 0
    assert (emissions.grad[~mask] == 0).all()  # padding takes no part in the loss
    assert crf.transitions.grad[crf.allowed_transitions].abs().sum() > 0
    assert (crf.transitions.grad[~crf.allowed_transitions] == 0).all()
    assert (crf.start_transitions.grad[~crf.allowed_start] == 0).all()


def test_half_precision_emissions_are_scored_in_float32():
    crf = random_crf(3).float()
    emissions, tags, mask = random_batch([4, 2], 3)
    emissions = emissions.float()
    loss = crf(emissions.bfloat16(), tags, mask)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, crf(emissions.bfloat16().float(), tags, mask))
