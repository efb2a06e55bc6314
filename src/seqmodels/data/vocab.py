"""String <-> id mappings for tokens, tags and labels, built from the training split only.

A vocabulary is stored as a plain list of strings (its ``itos``), so that it travels inside a
checkpoint that ``torch.load(path, weights_only=True)`` can read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

PAD = "<pad>"
UNK = "<unk>"


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
    def for_labels(cls, labels: Iterable[str]) -> Vocabulary:
        """A closed set (tags or classes), sorted: no padding, no unknown."""
        return cls(sorted(set(labels)))

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
        """Stop with a clear error naming the strings of a closed set that training never saw."""
        unseen = sorted(set(items) - set(self.stoi))
        if unseen:
            raise ValueError(
                f"{where} contains {len(unseen)} value(s) the training split never had: {unseen[:20]}. "
                "A model cannot predict a class it was not trained on; fix the data or add examples to train."
            )
