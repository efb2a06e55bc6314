"""The old import path of :class:`~seqmodels.inference.onnx_runtime.OnnxPredictor`, which the README of 0.3 showed (it keeps
working): the code lives in :mod:`seqmodels.inference.onnx_runtime`."""

from seqmodels.inference.onnx_runtime import OnnxPredictor

__all__ = ["OnnxPredictor"]
