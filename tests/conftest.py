"""Fixtures shared by the test modules. The plain values and functions they share (the CoNLL-U sample, VOCAB,
random examples and padded batches, the subprocess runner) are in helpers.py, where ``pytest.mark.parametrize``
lists and module-scoped fixtures can import them too."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import CONLLU, SIZES, VOCAB

from seqmodels.models.sequence_model import SequenceModel


@pytest.fixture
def conllu_file(tmp_path) -> Path:
    """The CoNLL-U sample (helpers.CONLLU) as ``tmp_path / "sample.conllu"``."""
    path = tmp_path / "sample.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    return path


if os.environ.get("PYTEST_XDIST_WORKER"):  # one process per core (pyproject.toml): more threads would contend
    torch.set_num_threads(1)


@pytest.fixture
def make_model() -> Callable[..., SequenceModel]:
    """``make_model(chars=False, cases=False, encoder=None, **heads)``: a small SequenceModel, seeded random weights."""

    def make(chars: bool = False, cases: bool = False, encoder: dict | None = None, **heads) -> SequenceModel:
        """VOCAB with chars/cases if asked, SIZES updated by ``encoder``, the ``heads`` (default: tagger+classifier)."""
        torch.manual_seed(0)
        left_out = {name for name, wanted in (("chars", chars), ("cases", cases)) if not wanted}
        vocab = {name: items for name, items in VOCAB.items() if name not in left_out}
        heads = heads or {"tagger": {}, "classifier": {}}
        return SequenceModel(vocab, encoder=SIZES | (encoder or {}), **heads)

    return make
