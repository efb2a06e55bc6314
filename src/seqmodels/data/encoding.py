"""Strings -> ids for everything the model reads, and each head's targets: the function ``datasets.map`` runs
on every split, and the one prediction runs on new text."""

from __future__ import annotations

from collections.abc import Sequence

from seqmodels.data.fields import Field
from seqmodels.data.vocab import case_of, from_lists


class Numericalizer:
    """Encodes a batch of sentences with the model's vocabularies (``tokens``, optional ``chars`` and ``cases``,
    and a vocabulary per head with classes). A ``cases`` vocabulary means the tokens are looked up lower-cased.
    Each field whose head's column the batch has (named after the head) is encoded too, under the head's name."""

    def __init__(self, vocab: dict[str, list[str]], max_word_length: int = 20, fields: Sequence[Field] = ()) -> None:
        self.vocab = from_lists(vocab)
        self.lowercase = "cases" in vocab
        self.max_word_length = max_word_length
        self.fields = [field for field in fields if field.column is not None]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        sentences = batch["tokens"]
        tokens = self.vocab["tokens"]
        forms = [[t.lower() for t in s] for s in sentences] if self.lowercase else sentences
        encoded = {"token_ids": [tokens.encode(s) for s in forms], "length": [len(s) for s in sentences]}
        if "chars" in self.vocab:
            chars = self.vocab["chars"]
            encoded["char_ids"] = [[chars.encode(t[: self.max_word_length]) for t in s] for s in sentences]
        if "cases" in self.vocab:
            encoded["case_ids"] = [self.vocab["cases"].encode([case_of(t) for t in s]) for s in sentences]
        for field in self.fields:
            if field.name in batch:
                encoded[field.name] = field.encode(batch[field.name], self.vocab.get(field.name))
        return encoded
