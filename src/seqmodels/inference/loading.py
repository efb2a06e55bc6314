"""A model rebuilt from a checkpoint alone, or from a model folder (:mod:`.folder`: a local one or a Hub
repository id), with the data options it was trained with.

Above the model, unlike :mod:`seqmodels.checkpoints` (reading, checking, writing, provenance), which the model
imports to record its provenance.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from torch import Tensor

from seqmodels.checkpoints import CheckpointError, check_fits, complete_data_options, read_checkpoint
from seqmodels.inference.folder import CONFIG, WEIGHTS, read_folder, resolve
from seqmodels.models.sequence_model import SequenceModel


def data_options(hparams: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The data options a checkpoint's model was trained with; the defaults, with a warning, where it recorded
    none (before 0.3.0)."""
    options = complete_data_options(hparams.get("data_options"), hparams["vocab"])
    if "data_options" not in hparams:
        warnings.warn(f"{path} records no data options (written before seqmodels 0.3.0); assuming {options}",
                      stacklevel=2)
    return options


def load_model(source: str | Path, device: str = "cpu") -> SequenceModel:
    """The model of a seqmodels checkpoint (``weights_only``) or model folder (safetensors and JSON), or of a Hub
    repository id, in eval mode, rebuilt from that alone."""
    path = resolve(source)
    if path.is_dir():
        hparams, state_dict = read_folder(path)
        return build_model(hparams, state_dict, path / CONFIG, path / WEIGHTS).to(device)
    checkpoint = read_checkpoint(path)
    return build_model(checkpoint["hyper_parameters"], checkpoint["state_dict"], path, path).to(device)


def build_model(
    hparams: dict[str, Any], state_dict: dict[str, Tensor], config: Path, weights: Path
) -> SequenceModel:
    """The model of ``hparams`` with ``state_dict``'s weights, in eval mode; the errors name ``config`` (what the
    hyperparameters were read from) or ``weights``."""
    hparams["data_options"] = data_options(hparams, config)
    # Built directly rather than by load_from_checkpoint: a checkpoint that still holds LightningCLI's
    # `_instantiator` (older ones; SequenceModel now drops it) would go through jsonargparse, whose checks
    # take a minute on a 10,000-word vocabulary.
    try:
        model = SequenceModel(**{key: value for key, value in hparams.items() if not key.startswith("_")})
    except (TypeError, ValueError, RuntimeError) as error:  # hyperparameters this version cannot build
        lines = str(error).strip().splitlines() or [""]
        raise CheckpointError(f"cannot rebuild the model from {config} ({type(error).__name__}: {lines[0]})") from None
    check_fits(state_dict, model, weights)  # names the first weight that does not fit (load_state_dict: many lines)
    model.load_state_dict(state_dict)
    return model.eval()
