"""The old import path of :func:`~seqmodels.inference.predictor.simple_tokenize`, which the README of 0.3 showed (it keeps
working): the code lives in :mod:`seqmodels.inference.predictor`."""

from seqmodels.inference.predictor import simple_tokenize

__all__ = ["simple_tokenize"]
