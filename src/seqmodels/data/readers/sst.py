"""The Stanford Sentiment Treebank's PTB trees: a sentiment label 0-4 on every node, one tree per line.

``granularity: binary`` is the SST-2 protocol (0-1 negative, 3-4 positive, 2 dropped); ``fine`` keeps the
five labels (SST-5). ``use_subtrees`` trains on every distinct labelled phrase, as the published SST-2
numbers do; validation and test always read whole sentences.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from seqmodels.data.readers.common import DataFormatError, Located, ReaderOptions, nonblank_lines


SST_LABELS = {
    "binary": {"0": "negative", "1": "negative", "2": None, "3": "positive", "4": "positive"},
    "fine": {label: label for label in "01234"},
}
_TREE_TOKENS = re.compile(r"\(|\)|[^ \t\n\r\f\v()]+")  # words may contain U+00A0 (`8\xa01\/2`)


def _parse_tree(text: str) -> list[tuple[str, list[str]]]:
    """Every node of one PTB tree ``(label (label word) ...)`` as ``(label, its words)``, children first, root last."""
    tokens = _TREE_TOKENS.findall(text)
    nodes: list[tuple[str, list[str]]] = []
    end = _parse_node(tokens, 0, nodes)
    if end != len(tokens):
        raise ValueError(f"expected the end of the line after the tree, found {tokens[end]!r}")
    return nodes


def _parse_node(tokens: list[str], i: int, nodes: list[tuple[str, list[str]]]) -> int:
    """Parse the node that starts at ``tokens[i]``, append it and its descendants to ``nodes``; return where it ends."""
    if tokens[i : i + 1] != ["("] or i + 1 >= len(tokens) or tokens[i + 1] in "()":
        raise ValueError(f"expected '(label' at token {i + 1}")
    label, i = tokens[i + 1], i + 2
    if i < len(tokens) and tokens[i] not in "()":
        words, i = [tokens[i]], i + 1
    else:
        words = []
        while tokens[i : i + 1] == ["("]:
            i = _parse_node(tokens, i, nodes)
            words += nodes[-1][1]
    if not words or tokens[i : i + 1] != [")"]:
        raise ValueError(f"expected ')' closing ({label} at token {i + 1}")
    nodes.append((label, words))
    return i + 1


def read_sst_trees(path: str, corpus: ReaderOptions) -> Iterator[Located]:
    """Sentiment Treebank trees, one per line: the root sentences, or with ``use_subtrees`` every distinct phrase."""
    labels, seen = SST_LABELS[corpus.granularity], set()
    for where, line in nonblank_lines(path, corpus.encoding):
        try:
            nodes = _parse_tree(line)
        except ValueError as error:
            raise DataFormatError(f"{where}: malformed tree: {error}") from None
        for sentiment, words in reversed(nodes) if corpus.use_subtrees else nodes[-1:]:
            if sentiment not in labels:
                raise DataFormatError(f"{where}: expected a sentiment label 0-4, found {sentiment!r}")
            phrase = (tuple(words), labels[sentiment])
            if phrase[1] is None or phrase in seen:
                continue
            if corpus.use_subtrees:  # phrases repeat across trees ("the", "film"): keep each (tokens, label) once
                seen.add(phrase)
            yield where, {"tokens": words, "label": phrase[1]}
