"""Prediction from a trained checkpoint, above the model and the data: nothing below imports this package.

- :mod:`.loading`: a model rebuilt from a checkpoint alone, or from a model folder (:mod:`.folder`) or a Hub
  repository id: :func:`load_model`;
- :mod:`.predictor`: :class:`~.predictor.Predictor`, the one prediction path (``seqmodels-predict``,
  ``train.py predict``, the server);
- :mod:`.backends`: what computes its scores (PyTorch, int8, ONNX Runtime, TorchScript);
- :mod:`.export` (``seqmodels-export``) and :mod:`.onnx_runtime` (running an export, ``OnnxPredictor``);
- :mod:`.publish` (``seqmodels-export --format hub``): a model folder with its card (:mod:`.model_card`);
- :mod:`.predict_cli` (``seqmodels-predict``) with :mod:`.formats` (its input and output formats);
- :mod:`.server` (``seqmodels-serve``).
"""

from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor

__all__ = ["Predictor", "load_model"]
