"""A model rebuilt from a checkpoint alone, with the data options it was trained with.

Above the model, unlike :mod:`seqmodels.checkpoints` (reading, checking, writing, provenance), which the model
imports to record its provenance.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from seqmodels.checkpoints import CheckpointError, check_fits, complete_data_options, read_checkpoint
from seqmodels.models.sequence_model import SequenceModel


def data_options(hparams: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The data options a checkpoint's model was trained with; the defaults, with a warning, where it recorded
    none (before 0.3.0)."""
    options = complete_data_options(hparams.get("data_options"), hparams["vocab"])
    if "data_options" not in hparams:
        warnings.warn(f"{path} records no data options (written before seqmodels 0.3.0); assuming {options}",
                      stacklevel=2)
    return options


def load_model(path: str | Path, device: str = "cpu") -> SequenceModel:
    """The model of a seqmodels checkpoint, in eval mode, rebuilt from the file alone (``weights_only``)."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    hparams["data_options"] = data_options(hparams, path)
    # Built directly rather than by load_from_checkpoint: a checkpoint that still holds LightningCLI's
    # `_instantiator` (older ones; SequenceModel now drops it) would go through jsonargparse, whose checks
    # take a minute on a 10,000-word vocabulary.
    try:
        model = SequenceModel(**{key: value for key, value in hparams.items() if not key.startswith("_")})
    except (TypeError, ValueError, RuntimeError) as error:  # hyperparameters this version cannot build
        lines = str(error).strip().splitlines() or [""]
        raise CheckpointError(f"cannot rebuild the model from {path} ({type(error).__name__}: {lines[0]})") from None
    check_fits(checkpoint, model, path)  # names the first weight that does not fit (load_state_dict: many lines)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()
