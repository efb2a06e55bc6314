"""A linear-chain conditional random field (CRF) over per-token tag scores.

A tag sequence ``y`` of length n has the score

    start[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_(t-1), y_t] + end[y_(n-1)]

and the CRF's probability of ``y`` is ``exp(score(y)) / Z``, where ``Z`` sums over every sequence.
Training minimises ``log Z - score(gold)`` (the forward algorithm computes ``log Z``); decoding finds
the best-scoring sequence (Viterbi). Both loop over time only, never over the batch.

Shapes: B = batch, T = padded length, C = number of tags. ``mask`` (B, T) is True at real tokens;
padding must sit at the end of each row and every row must have at least one token, so
``mask = torch.arange(T, device=device) < lengths.to(device)[:, None]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from seqmodels.padding import IGNORE_INDEX

# The score of a forbidden transition: small enough that no forbidden sequence ever wins or weighs
# in Z, yet finite, so that sums of scores never produce inf - inf = nan (-inf would).
FORBIDDEN = -1e4


class AllowedTransitions(NamedTuple):
    """Which tags may start a sentence, follow one another, and end a sentence (all boolean)."""

    start: Tensor  # (C,): start[j], tag j may be the first tag
    transitions: Tensor  # (C, C): transitions[i, j], tag j may follow tag i
    end: Tensor  # (C,): end[i], tag i may be the last tag


def bio_allowed_transitions(tags: list[str]) -> AllowedTransitions:
    """The BIO (IOB2) constraints for ``tags`` (id -> tag string).

    ``I-X`` may only follow ``B-X`` or ``I-X``, so it cannot start a sentence; every other tag
    (``O``, ``B-*``) may appear anywhere, and any tag may end a sentence.
    """
    num_tags = len(tags)
    start = torch.ones(num_tags, dtype=torch.bool)
    transitions = torch.ones(num_tags, num_tags, dtype=torch.bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = False
            transitions[:, j] = torch.tensor([prev in (f"B-{tag[2:]}", tag) for prev in tags])
    return AllowedTransitions(start, transitions, torch.ones(num_tags, dtype=torch.bool))


class CRF(nn.Module):
    """A linear-chain CRF with learned start, transition and end scores (initially zero: no preference).

    Args:
        num_tags: C, the number of tags.
        allowed_transitions: optional constraints (e.g. :func:`bio_allowed_transitions`); the scores
            of forbidden moves are replaced by ``FORBIDDEN`` in both the loss and decoding, so the
            gold tags given to :meth:`forward` must respect them. ``None`` allows everything.
    """

    def __init__(self, num_tags: int, allowed_transitions: AllowedTransitions | None = None) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.zeros(num_tags))  # (C,)
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # (C, C): from tag i to tag j
        self.end_transitions = nn.Parameter(torch.zeros(num_tags))  # (C,)
        if allowed_transitions is None:  # everything allowed
            allowed_transitions = AllowedTransitions(
                torch.ones(num_tags, dtype=torch.bool),
                torch.ones(num_tags, num_tags, dtype=torch.bool),
                torch.ones(num_tags, dtype=torch.bool),
            )
        # Not persistent: the constraints come from the constructor's arguments, not the checkpoint.
        for name, allowed in zip(AllowedTransitions._fields, allowed_transitions):
            self.register_buffer(f"allowed_{name}", allowed.to(torch.bool), persistent=False)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Start (C,), transition (C, C) and end (C,) scores, with the forbidden moves at ``FORBIDDEN``."""
        return (
            self.start_transitions.masked_fill(~self.allowed_start, FORBIDDEN),
            self.transitions.masked_fill(~self.allowed_transitions, FORBIDDEN),
            self.end_transitions.masked_fill(~self.allowed_end, FORBIDDEN),
        )

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """The negative log-likelihood of ``tags``, averaged over the sentences of the batch.

        ``emissions`` (B, T, C) scores, ``tags`` (B, T) long (any value, e.g. ``IGNORE_INDEX``, at
        padding), ``mask`` (B, T) bool. The mean is per sentence, not per token: the loss of a
        sentence grows with its length, unlike a token-averaged cross-entropy.
        """
        # The recursion adds up T scores: keep it in the parameters' dtype (float32 under autocast).
        emissions = emissions.to(self.transitions.dtype)
        start, transitions, end = self._scores()
        tags = tags.masked_fill(~mask, 0)  # any valid id, so that indexing works; masked out below

        # Score of the gold sequence.
        gold_emissions = emissions.gather(-1, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        gold_transitions = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last_tags = tags.gather(1, mask.sum(1, keepdim=True) - 1).squeeze(1)  # (B,)
        gold_score = (
            start[tags[:, 0]]
            + gold_emissions.masked_fill(~mask, 0).sum(1)
            + gold_transitions.masked_fill(~mask[:, 1:], 0).sum(1)
            + end[last_tags]
        )  # (B,)

        # log Z by the forward algorithm: alpha[b, j] = log-sum of the scores of all prefixes ending in j.
        alpha = start + emissions[:, 0]  # (B, C)
        for t in range(1, emissions.size(1)):
            # (B, C, 1) + (C, C) + (B, 1, C) -> (B, C, C), summed (in log space) over the previous tag.
            scores = alpha.unsqueeze(2) + transitions + emissions[:, t].unsqueeze(1)  # (B, C, C)
            next_alpha = torch.logsumexp(scores, dim=1)  # (B, C)
            alpha = torch.where(mask[:, t].unsqueeze(1), next_alpha, alpha)  # padding carries alpha unchanged
        log_partition = torch.logsumexp(alpha + end, dim=1)  # (B,)

        return (log_partition - gold_score).mean()

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """The best tag sequence of each sentence (Viterbi): (B, T) long, ``IGNORE_INDEX`` at padding.

        ``emissions`` (B, T, C), ``mask`` (B, T) bool.
        """
        emissions = emissions.to(self.transitions.dtype)
        start, transitions, end = self._scores()
        batch_size, max_len, num_tags = emissions.shape

        # score[b, j]: the best score of a prefix ending in tag j; backpointers[t][b, j]: its tag at t-1.
        score = start + emissions[:, 0]  # (B, C)
        identity = torch.arange(num_tags, device=emissions.device).expand(batch_size, num_tags)  # (B, C)
        backpointers = []
        for t in range(1, max_len):
            best, previous = (score.unsqueeze(2) + transitions).max(dim=1)  # (B, C) each
            step = mask[:, t].unsqueeze(1)  # (B, 1)
            score = torch.where(step, best + emissions[:, t], score)
            # At padding, point each tag to itself: backtracking then carries the last real tag
            # unchanged through the padding, down to the sentence's true end.
            backpointers.append(torch.where(step, previous, identity))

        path = [(score + end).argmax(dim=1)]  # (B,) each: the tag at T-1, i.e. at each sentence's end
        for previous in reversed(backpointers):
            path.append(previous.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        tags = torch.stack(path[::-1], dim=1)  # (B, T)
        return tags.masked_fill(~mask, IGNORE_INDEX)
