"""Checkpoints: reading, checking, finding, writing atomically, and the provenance each one records.

- :func:`read_checkpoint` loads with ``weights_only=True`` (plain tensors and containers, never arbitrary
  pickled objects) and fails with one line naming the file when it is missing, corrupt, not a seqmodels
  checkpoint, or made by a newer format.
- :func:`check_fits` and :func:`check_same_data` name the first weight or vocabulary that a checkpoint
  from another task, config or corpus does not share with the model at hand.
- :func:`find_checkpoint` resolves ``--ckpt_path best|last`` to a file of the newest earlier run.
- :class:`AtomicCheckpointIO` writes ``<name>.partial`` beside the target, fsyncs it and renames it over
  the target, so a kill during a write leaves the previous checkpoint whole.
- :func:`provenance` is what every checkpoint records under ``"seqmodels"``: the package version, the
  checkpoint format, the config it was trained with, the hardware and the random number generators' states, which
  :func:`restore_rng` puts back when training resumes, so a resumed run equals an uninterrupted one.

The model imports this module (to record provenance), so it never imports the model: rebuilding a model from a
checkpoint is :func:`seqmodels.inference.loading.load_model`.
"""

from __future__ import annotations

import os
import platform
import random
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

# 1: before checkpoints recorded a format (same layout, loads); 2: + version, config, RNG states (0.2.0);
# 3: + the data options in the hyperparameters (0.3.0)
FORMAT = 3
KEY = "seqmodels"
# The data module's defaults, which checkpoints before format 3 were trained with (they recorded none).
# ``columns``: where each token head's values came from (the corpus's format, its column, its tag scheme), for
# writing them back.
DEFAULT_DATA_OPTIONS: dict[str, Any] = {"max_word_length": 20, "lowercase": False, "columns": {}}
# Weights renamed since a release: (old, new) parts of a state dict's keys.
RENAMED = (("char_cnn.", "chars."),)  # the character encoder, a CNN only up to 0.3.0
# Encoder options added since a release, with the value that checkpoints from before them had.
ENCODER_DEFAULTS = {"char_encoder": "cnn"}


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, not a seqmodels one, or not for this model."""


def package_version() -> str:
    try:
        return version("seqmodels")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def provenance(config: str | None) -> dict[str, Any]:
    """The ``"seqmodels"`` record of a checkpoint (plain types and tensors only: ``weights_only`` loads it)."""
    return {"version": package_version(), "format": FORMAT, "config": config, "rng": rng_states(),
            "hardware": hardware()}  # fmt: skip


def hardware() -> str:
    """What trains: the GPU's name, or the CPU's (from /proc/cpuinfo on Linux) and its cores, for model cards."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name()}"
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []  # fmt: skip
    return f"CPU: {names[0] if names else platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def rng_states() -> dict[str, Any]:
    """The states of the generators training draws from: torch's (CPU and each GPU) and Python's ``random``."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate((3, tuple(states["python"]), None))  # version 3 is CPython's Mersenne Twister state
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def current_name(key: str) -> str:
    """A weight's name in this version, from its name in a checkpoint of any version (:data:`RENAMED`)."""
    for old, new in RENAMED:
        key = key.replace(old, new, 1)
    return key


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A seqmodels checkpoint as a dict, loaded with ``weights_only=True``, its weights under today's names;
    :class:`CheckpointError` otherwise."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickle, zip, OS errors: torch's messages say little more than this
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint (corrupt, truncated or not one)") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "tokens" not in (hparams.get("vocab") or {}) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a seqmodels checkpoint (no vocabularies in its hyperparameters)")
    record = checkpoint.get(KEY, {"format": 1, "version": "0.1.0 or older"})
    if record.get("format", 1) > FORMAT:
        raise CheckpointError(
            f"{path} was written by seqmodels {record.get('version')} (checkpoint format {record['format']}); "
            f"this is seqmodels {package_version()}, which reads formats up to {FORMAT}: upgrade seqmodels"
        )
    if isinstance(checkpoint.get("state_dict"), dict):
        checkpoint["state_dict"] = {current_name(key): value for key, value in checkpoint["state_dict"].items()}
    return checkpoint


def complete_data_options(options: dict[str, Any] | None, vocab: dict[str, list[str]]) -> dict[str, Any]:
    """``options`` with the data module's defaults where they are missing (a model built without a data module
    has ``None``); a case vocabulary means lower-cased lookups."""
    options = dict(options or {})
    if "tags" in options:  # 0.3: the one tagger's source, as ``tags``; now each token head's, as ``columns``
        tags = options.pop("tags")
        options.setdefault("columns", {"tagger": tags} if tags else {})
    return DEFAULT_DATA_OPTIONS | {"lowercase": "cases" in vocab} | options


def check_fits(state_dict: dict[str, torch.Tensor], model: nn.Module, path: str | Path) -> None:
    """Fail with one line when the weights read from ``path`` are not this model's (another task, sizes or
    vocabulary)."""
    theirs, ours = state_dict, model.state_dict()
    for name, tensor in ours.items():
        if name not in theirs:
            raise CheckpointError(f"{path} is for another model: it has no '{name}' (another task or config?)")
        if theirs[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path} is for another model: '{name}' is {tuple(theirs[name].shape)} there and {tuple(tensor.shape)} "
                "here (another vocabulary or encoder size?)"
            )
    extra = sorted(set(theirs) - set(ours))
    if extra:
        raise CheckpointError(f"{path} is for another model: it has '{extra[0]}', which this config does not build")


def check_same_data(checkpoint: dict[str, Any], vocab: dict[str, list[str]], path: str | Path) -> None:
    """Fail with one line naming the first vocabulary of ``vocab`` (the data's) that the checkpoint's differs from:
    weights of the same sizes can stand for other words."""
    theirs = checkpoint["hyper_parameters"]["vocab"]
    for name, items in vocab.items():
        if theirs.get(name) != items:
            raise CheckpointError(f"{path} was trained on other data: its '{name}' vocabulary differs")


# The options that decide a run's vocabularies: a checkpoint fits a run's data only if these are its fit's.
VOCABULARY_OPTIONS = ("data.train_file", "data.val_file", "data.val_fraction", "data.min_freq", "data.lowercase",
                      "data.char_features", "data.pretrained_embeddings", "model.init_from")  # fmt: skip


def options_of_its_fit(checkpoint: dict[str, Any], config: Any) -> str:
    """The :data:`VOCABULARY_OPTIONS` and ``model.encoder`` options that the fit which wrote ``checkpoint`` (its
    recorded config) set otherwise than ``config`` does, as a hint to end an error with; "" when none differs or
    nothing was recorded."""
    recorded = yaml.safe_load(checkpoint.get(KEY, {}).get("config") or "{}") or {}
    differ = []
    for option in VOCABULARY_OPTIONS:
        section, key = option.split(".")
        theirs, ours = (recorded.get(section) or {}).get(key), getattr(getattr(config, section, None), key, None)
        if theirs != ours:
            differ.append(f"--{option} {theirs}")
    if recorded:  # the encoder's sizes decide its weights' shapes; an option it did not record had its default
        theirs = ENCODER_DEFAULTS | ((recorded.get("model") or {}).get("encoder") or {})
        ours = getattr(config.model, "encoder", None) or {}
        ours = ENCODER_DEFAULTS | (ours.as_dict() if hasattr(ours, "as_dict") else dict(ours))
        differ += [f"--model.encoder.{key} {theirs.get(key)}" for key in sorted(set(theirs) | set(ours))
                   if theirs.get(key) != ours.get(key)]  # fmt: skip
    return f"; the fit that wrote it had {' '.join(differ)}" if differ else ""


def last_checkpoints(runs_dir: Path) -> list[Path]:
    """The ``last.ckpt`` of each run under ``runs_dir`` that has one, oldest run first (``version_N``; a folder such
    as ``version_0_old`` is not one of Lightning's runs)."""
    runs = [run for run in runs_dir.glob("version_*") if run.name.removeprefix("version_").isdigit()]
    runs.sort(key=lambda run: int(run.name.removeprefix("version_")))
    return [last for run in runs if (last := run / "checkpoints" / "last.ckpt").is_file()]


def unfinished_run(runs_dir: Path) -> str | None:
    """A notice for a fit about to start a new run when the newest run under ``runs_dir`` that has a ``last.ckpt`` has
    no final metrics (``metrics_fit.json``): killed or interrupted (or still running), naming the option that
    continues it."""
    lasts = last_checkpoints(runs_dir)
    if not lasts or (lasts[-1].parent.parent / "metrics_fit.json").exists():
        return None
    return (f"{lasts[-1].parent.parent} has no final metrics: it stopped before its end (or still runs). This fit "
            f"starts a new run; to continue that one instead, rerun with --ckpt_path {lasts[-1]}")  # fmt: skip


def find_checkpoint(runs_dir: Path, which: str) -> Path:
    """``last.ckpt`` of the newest ``version_N`` under ``runs_dir`` that has one, or the best checkpoint it recorded."""
    runs = last_checkpoints(runs_dir)
    if not runs:
        raise FileNotFoundError(f"no earlier run with a last.ckpt under {runs_dir}/version_*/checkpoints/")
    last = runs[-1]
    if which == "last":
        return last
    states = torch.load(last, map_location="cpu", weights_only=True).get("callbacks", {})
    best = next((s["best_model_path"] for k, s in states.items() if k.startswith("ModelCheckpoint")), "")
    if not best or not Path(best).is_file():
        raise FileNotFoundError(f"{last} records no best checkpoint that still exists ({best or 'none'})")
    return Path(best)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on a local disk: write beside the target, fsync, rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")  # not seqmodels.files.replacing: a symlink last.ckpt
        with partial.open("wb") as file:  # (save_last: link) is replaced, not the checkpoint it names
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)  # atomic within one file system
