"""Prediction from a trained checkpoint, above the model and the data: nothing below imports this package.

- :mod:`.loading`: a model rebuilt from a checkpoint alone;
- :mod:`.predictor`: :class:`~.predictor.Predictor`, the one prediction path (``seqmodels-predict``,
  ``train.py predict``, the server);
- :mod:`.backends`: what computes its scores (PyTorch, int8, ONNX Runtime, TorchScript);
- :mod:`.export` (``seqmodels-export``) and :mod:`.onnx_runtime` (running an export, ``OnnxPredictor``);
- :mod:`.predict_cli` (``seqmodels-predict``) with :mod:`.formats` (its input and output formats);
- :mod:`.server` (``seqmodels-serve``).
"""
