"""The embedded synthetic corpus: determinism, caching, well-formedness, and the context it demands."""

import random
from collections import Counter, defaultdict

import pytest

from seqmodels.data import synthetic
from seqmodels.data.synthetic import (
    LABELS,
    generate_sentence,
    load_synthetic_corpus,
    synthetic_examples,
)

UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ",
        "SYM", "VERB", "X"}
SIZES = {"train_size": 300, "val_size": 60, "test_size": 60}


@pytest.fixture(scope="module")
def sample() -> list[tuple[list[str], list[str], str]]:
    """5,000 generated sentences: tokens, tags and label."""
    rng = random.Random(1234)
    return [generate_sentence(rng) for _ in range(5000)]


def as_lists(corpus) -> dict:
    """Every split of the corpus as plain lists, to compare corpora."""
    return {split: corpus[split].to_dict() for split in corpus}


def test_same_seed_gives_the_same_corpus_and_the_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    first = load_synthetic_corpus(**SIZES, seed=3, cache_dir=str(tmp_path))
    assert list(first) == ["train", "validation", "test"]
    assert [len(first[s]) for s in first] == [300, 60, 60]
    assert all(f["filename"].startswith(str(tmp_path)) for s in first for f in first[s].cache_files)

    def must_not_generate(rng):
        raise AssertionError("the cached corpus was generated again")

    monkeypatch.setattr(synthetic, "generate_sentence", must_not_generate)
    again = load_synthetic_corpus(**SIZES, seed=3, cache_dir=str(tmp_path))
    assert as_lists(again) == as_lists(first)
    monkeypatch.undo()

    fresh = load_synthetic_corpus(**SIZES, seed=3, cache_dir=str(tmp_path / "elsewhere"))  # generated anew
    assert as_lists(fresh) == as_lists(first)


def test_seeds_and_splits_give_different_sentences(tmp_path):
    corpus = load_synthetic_corpus(**SIZES, seed=0, cache_dir=str(tmp_path))
    other = load_synthetic_corpus(**SIZES, seed=1, cache_dir=str(tmp_path))
    assert corpus["train"]["tokens"] != other["train"]["tokens"]
    assert corpus["validation"]["tokens"][:50] != corpus["test"]["tokens"][:50]
    assert corpus["train"]["tokens"][:50] != corpus["validation"]["tokens"][:50]


def test_examples_are_deterministic_given_the_seed():
    assert list(synthetic_examples(50, seed=7)) == list(synthetic_examples(50, seed=7))
    assert list(synthetic_examples(50, seed=7)) != list(synthetic_examples(50, seed=8))


def test_sentences_are_well_formed(sample):
    lengths = [len(tokens) for tokens, _, _ in sample]
    for tokens, tags, label in sample:
        assert len(tokens) == len(tags) > 0
        assert all(t == t.lower() and t.strip() == t and t for t in tokens)
        assert set(tags) <= UPOS
        assert label in LABELS
        assert tags[-1] == "PUNCT"
    assert min(lengths) >= 4 and max(lengths) <= 40
    assert 10 <= sum(lengths) / len(lengths) <= 14
    vocabulary = {t for tokens, _, _ in sample for t in tokens}
    assert 150 <= len(vocabulary) <= 500


def test_labels_are_balanced(sample):
    share = Counter(label for _, _, label in sample)["positive"] / len(sample)
    assert 0.45 <= share <= 0.55


def test_tags_and_label_are_a_function_of_the_tokens(sample):
    seen: dict[tuple, tuple] = {}
    for tokens, tags, label in sample:
        assert seen.setdefault(tuple(tokens), (tags, label)) == (tags, label)


def test_many_words_need_their_right_context_to_be_tagged(sample):
    """Same words up to and including position i, different tags at i: only the words after i can decide."""
    tags_after_prefix = defaultdict(set)
    for tokens, tags, _ in sample:
        for i in range(len(tokens)):
            tags_after_prefix[tuple(tokens[: i + 1])].add(tags[i])
    undecidable = {prefix[-1] for prefix, tags in tags_after_prefix.items() if len(tags) > 1}
    assert len(undecidable) >= 8, undecidable

    tags_of = defaultdict(set)
    for tokens, tags, _ in sample:
        for token, tag in zip(tokens, tags):
            tags_of[token].add(tag)
    assert tags_of["that"] >= {"DET", "PRON", "SCONJ"}


def test_the_same_sentiment_words_can_carry_either_label(sample):
    """Negation and contrast decide, so the multiset of polar words (with the negators and connectives) does not."""
    tables = (synthetic.ADJ, synthetic.PRAISE, synthetic.MANNER)
    polar = {word for table in tables for words in table.values() for word in words}
    polar |= {form for pairs in synthetic.FEEL.values() for pair in pairs for form in pair}
    polar |= {"not", "n't", "never", "but", "yet", "although", "though", "and"}
    labels_of = defaultdict(set)
    for tokens, _, label in sample:
        labels_of[tuple(sorted(t for t in tokens if t in polar))].add(label)
    both = [words for words, labels in labels_of.items() if len(labels) == 2]
    assert any("but" in words or "although" in words or "though" in words for words in both)
    assert any("not" in words or "n't" in words or "never" in words for words in both)
    assert len(both) >= 20
