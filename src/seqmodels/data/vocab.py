"""String <-> id mappings for tokens, characters and each head's classes, built from the training split only.

A vocabulary is stored as a plain list of strings (its ``itos``), so that it travels inside a
checkpoint that ``torch.load(path, weights_only=True)`` can read.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

PAD = "<pad>"
UNK = "<unk>"
# The case feature that goes with lower-cased lookups: what lower-casing a token threw away.
CASES = [PAD, "lower", "title", "upper", "mixed", "none"]


def case_of(token: str) -> str:
    """The token's case class, one of ``CASES``: lower, title ("Paris"), upper ("NASA"), mixed ("iPhone")
    or none ("42")."""
    if not any(c.isalpha() for c in token):
        return "none"
    if token.islower():
        return "lower"
    if token.isupper():
        return "upper"
    return "title" if token[0].isupper() and token[1:] == token[1:].lower() else "mixed"


def sentences_of(datasets: Iterable[Any]) -> Iterator[list[str]]:
    """The ``tokens`` of every row of each ``datasets.Dataset``, read from its Arrow file a batch at a time, so
    that memory stays bounded however large the corpus (a language model's raw text)."""
    for dataset in datasets:
        for batch in dataset.select_columns(["tokens"]).iter(batch_size=1024):
            yield from batch["tokens"]


class Vocabulary:
    """An ordered list of strings with a reverse index; ``unk`` is the fallback for unseen strings."""

    def __init__(self, itos: Sequence[str], unk: str | None = None) -> None:
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary cannot contain the same string twice")
        self.unk_id = self.stoi[unk] if unk is not None else None

    @classmethod
    def for_tokens(cls, sentences: Iterable[Sequence[str]], min_freq: int = 1) -> Vocabulary:
        """``<pad>`` (id 0), ``<unk>`` (id 1), then every token seen ``min_freq`` times, most frequent first."""
        counts = Counter(token for sentence in sentences for token in sentence)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept], unk=UNK)

    @classmethod
    def for_chars(cls, sentences: Iterable[Sequence[str]]) -> Vocabulary:
        """``<pad>``, ``<unk>``, then every character of every token, most frequent first."""
        return cls.for_tokens(([c for token in sentence for c in token] for sentence in sentences))

    @classmethod
    def for_labels(cls, labels: Iterable[str]) -> Vocabulary:
        """A closed set (tags or classes), sorted: no padding, no unknown."""
        return cls(sorted(set(labels)))

    def extended(self, items: Iterable[str]) -> Vocabulary:
        """A copy with ``items`` it lacks appended (in the given order), e.g. words that have pretrained vectors."""
        new = [item for item in dict.fromkeys(items) if item not in self.stoi]
        return Vocabulary(self.itos + new, unk=self.itos[self.unk_id] if self.unk_id is not None else None)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    def encode(self, items: Sequence[str]) -> list[int]:
        """Map strings to ids; unseen strings map to ``unk`` or raise ``KeyError``."""
        if self.unk_id is None:
            return [self.stoi[s] for s in items]
        return [self.stoi.get(s, self.unk_id) for s in items]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def check_known(self, items: Iterable[str], where: str) -> None:
        """Stop with a clear error naming a head's classes that training never saw, and the remedies."""
        unseen = sorted(set(items) - set(self.stoi))
        if unseen:
            raise ValueError(
                f"{where} include {len(unseen)} value(s) the training split never had: {unseen[:20]}. "
                "A model cannot predict a class it was not trained on; fix the data, add examples to train, or "
                "give the head unseen: unknown (--model.tagger.unseen unknown, --model.classifier.unseen unknown, or "
                "in its model.heads entry; they then count as its errors)."
            )


def cache_path(cache_dir: str, key: object) -> Path:
    """Where the vocabularies built for ``key`` (JSON: the data's fingerprints and the options) are cached."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return Path(cache_dir) / "vocabularies" / f"{digest}.json"


def cached(path: Path | None, build: Callable[[], dict[str, Vocabulary]]) -> dict[str, Vocabulary]:
    """Vocabularies read from ``path`` (JSON lists), or built and written there (atomically: a crash never leaves
    a half-written cache); ``path`` None: always built."""
    if path is not None and path.is_file():
        return from_lists(json.loads(path.read_text(encoding="utf-8")))
    vocabs = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({name: v.itos for name, v in vocabs.items()}), encoding="utf-8")
        partial.replace(path)
    return vocabs


def from_lists(vocab: dict[str, list[str]]) -> dict[str, Vocabulary]:
    """Rebuild vocabularies from their plain-list form (as kept in a checkpoint); tokens and chars have ``<unk>``,
    and a head's classes when it reads unseen ones as ``<unk>``."""
    return {name: Vocabulary(itos, unk=UNK if name in ("tokens", "chars") or UNK in itos else None)
            for name, itos in vocab.items()}  # fmt: skip
