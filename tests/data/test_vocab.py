"""Vocabularies: specials, min_freq, unknowns, closed sets."""

import pytest

from seqmodels.data.vocab import PAD, UNK, Vocabulary


def test_token_vocabulary_has_specials_and_respects_min_freq():
    vocab = Vocabulary.for_tokens([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos == [PAD, UNK, "a", "b"]
    assert vocab.encode(["a", "c", "zzz"]) == [2, 1, 1]
    assert vocab.decode([3, 2]) == ["b", "a"]


def test_closed_set_rejects_unknowns_with_their_names():
    tags = Vocabulary.for_labels(["NOUN", "VERB", "NOUN"])
    assert tags.itos == ["NOUN", "VERB"]
    with pytest.raises(KeyError):
        tags.encode(["ADJ"])
    with pytest.raises(ValueError, match=r"the test split's tags .*\['ADJ', 'ADV'\]"):
        tags.check_known(["NOUN", "ADJ", "ADV"], "the test split's tags")
    tags.check_known(["VERB"], "anything")


def test_round_trip_through_a_plain_list():
    vocab = Vocabulary.for_tokens([["x", "y"]])
    again = Vocabulary(list(vocab.itos), unk=UNK)
    assert again.encode(["y", "q"]) == vocab.encode(["y", "q"])


def test_duplicates_are_refused():
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["a", "a"])
