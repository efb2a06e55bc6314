"""SpanF1 against seqeval (default, conlleval-compatible mode), padding, and merging of states."""

import random

import pytest
import torch

from seqmodels.padding import IGNORE_INDEX
from seqmodels.models.span_f1 import SpanF1

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC-X", "I-MISC-X"]


def encode(sentences: list[list[str]], pad_to: int | None = None) -> torch.Tensor:
    """Tag strings -> ids (B, T), padded with IGNORE_INDEX."""
    max_len = pad_to or max(map(len, sentences))
    return torch.tensor([[TAGS.index(t) for t in s] + [IGNORE_INDEX] * (max_len - len(s)) for s in sentences])


def scores(preds: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """SpanF1's precision, recall and F1 of ``preds`` against ``gold``."""
    metric = SpanF1(TAGS)
    metric.update(encode(preds), encode(gold))
    return {name: value.item() for name, value in metric.compute().items()}


def seqeval_scores(preds: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """seqeval's precision, recall and F1 of ``preds`` against ``gold``."""
    seqeval = pytest.importorskip("seqeval.metrics")
    kwargs = {"zero_division": 0}
    return {
        "span_precision": seqeval.precision_score(gold, preds, **kwargs),
        "span_recall": seqeval.recall_score(gold, preds, **kwargs),
        "span_f1": seqeval.f1_score(gold, preds, **kwargs),
    }


def random_sentences(rng: random.Random, n: int) -> list[list[str]]:
    """Any tags in any order: ill-formed I- after O, at the start, after another type, included."""
    return [[rng.choice(TAGS) for _ in range(rng.randint(1, 10))] for _ in range(n)]


HAND_EXAMPLES = [
    # seqeval's docstring example: LOC is one token off, PER is right.
    (
        [["O", "O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "O"], ["B-PER", "I-PER", "O"]],
        [["O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"], ["B-PER", "I-PER", "O"]],
        {"span_precision": 0.5, "span_recall": 0.5, "span_f1": 0.5},
    ),
    # An I- after O starts a span: the prediction equals the gold span.
    ([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]], {"span_precision": 1.0, "span_recall": 1.0, "span_f1": 1.0}),
    # A type switch inside a run starts a new span: two predicted spans, neither is the gold one.
    ([["B-PER", "I-LOC"]], [["B-PER", "I-PER"]], {"span_precision": 0.0, "span_recall": 0.0, "span_f1": 0.0}),
    # B- right after B- of the same type: two spans, one of which is right.
    ([["B-PER", "B-PER", "O"]], [["B-PER", "O", "O"]], {"span_precision": 0.5, "span_recall": 1.0, "span_f1": 2 / 3}),
    # No spans anywhere: every score is 0 (no division by zero).
    ([["O", "O"]], [["O", "O"]], {"span_precision": 0.0, "span_recall": 0.0, "span_f1": 0.0}),
]


@pytest.mark.parametrize(("preds", "gold", "expected"), HAND_EXAMPLES)
def test_hand_examples(preds, gold, expected):
    assert scores(preds, gold) == pytest.approx(expected)


@pytest.mark.parametrize(("preds", "gold", "expected"), HAND_EXAMPLES)
def test_hand_examples_are_what_seqeval_says(preds, gold, expected):
    assert seqeval_scores(preds, gold) == pytest.approx(expected)


def test_spans_never_cross_sentences():
    # Sentence 1 ends in I-PER, sentence 2 starts with I-PER: two spans, not one.
    preds = [["B-PER", "I-PER"], ["I-PER", "O"]]
    gold = [["B-PER", "I-PER"], ["B-PER", "O"]]
    assert scores(preds, gold) == pytest.approx({"span_precision": 1.0, "span_recall": 1.0, "span_f1": 1.0})


@pytest.mark.parametrize("seed", range(20))
def test_random_sentences_match_seqeval(seed):
    rng = random.Random(seed)
    gold = random_sentences(rng, 30)
    # Mostly copy the gold tags (so that some spans are right), change some at random.
    preds = [[t if rng.random() < 0.7 else rng.choice(TAGS) for t in sentence] for sentence in gold]
    assert scores(preds, gold) == pytest.approx(seqeval_scores(preds, gold))


def test_padding_is_ignored_and_one_dimensional_input_is_one_sentence():
    gold = [["B-PER", "I-PER", "O"], ["I-LOC"]]
    preds = encode(gold, pad_to=6)
    preds[preds == IGNORE_INDEX] = TAGS.index("I-LOC")  # would extend or add spans if it were read
    metric = SpanF1(TAGS)
    metric.update(preds, encode(gold, pad_to=6))
    assert metric.compute()["span_precision"] == 1.0 and metric.gold == 2

    metric = SpanF1(TAGS)
    metric.update(encode([["B-LOC", "I-LOC", "O"]])[0], encode([["B-LOC", "I-LOC", "O"]])[0])
    assert metric.predicted == metric.correct == metric.gold == 1


def test_merged_halves_equal_the_whole():
    """What DDP does: each process counts its batches, then the counts are summed."""
    rng = random.Random(0)
    gold = random_sentences(rng, 40)
    preds = random_sentences(rng, 40)
    preds = [p[: len(g)] + ["O"] * (len(g) - len(p)) for p, g in zip(preds, gold)]
    whole, first, second = SpanF1(TAGS), SpanF1(TAGS), SpanF1(TAGS)
    whole.update(encode(preds), encode(gold))
    first.update(encode(preds[:15]), encode(gold[:15]))
    second.update(encode(preds[15:]), encode(gold[15:]))
    first.merge_state(second)
    for name, value in whole.compute().items():
        torch.testing.assert_close(first.compute()[name], value)


def test_rejects_tags_that_are_not_bio():
    with pytest.raises(ValueError, match="BIO"):
        SpanF1(["O", "B-PER", "PER"])
