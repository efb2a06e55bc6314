"""A model folder, the form a trained model is shared in (a Hugging Face Hub model repository): safetensors
weights and JSON, no pickle anywhere.

- ``config.json``: the model's hyperparameters without the vocabularies (their sizes are in the weights), its
  data options, the package version that wrote it and the folder format;
- ``vocab.json``: every vocabulary, the heads' label sets among them (``tags``, ``labels``, ...);
- ``model.safetensors``: the weights only (no optimizer state, no random number generators);
- ``README.md``: the model card (:mod:`.model_card`), which loading never reads.

:func:`resolve` turns a folder, a checkpoint or a Hub repository id into a local path; :func:`read_folder` reads
a folder back with every file checked, failing in one line that names the file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqmodels.checkpoints import CheckpointError, current_name, package_version
from seqmodels.data.vocab import PAD, UNK

FOLDER_FORMAT = 1
CONFIG, VOCAB, WEIGHTS, CARD = "config.json", "vocab.json", "model.safetensors", "README.md"


def is_model_folder(path: Path) -> bool:
    """Whether ``path`` is a folder this module wrote (its config.json has the ``seqmodels`` record)."""
    try:
        return "seqmodels" in json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def check_output(output: Path) -> None:
    """Refuse an ``output`` that writing would destroy: anything but a new path, an empty folder or an earlier
    model folder (which is replaced)."""
    if not output.name or output.name in (".", ".."):
        raise CheckpointError(f"--output {output}: expected the path of the folder to write, e.g. my-tagger")
    if output.exists() and not (output.is_dir() and (not any(output.iterdir()) or is_model_folder(output))):
        raise CheckpointError(f"--output {output} exists and is not a seqmodels model folder: refusing to replace it")


def write_folder(hparams: dict[str, Any], state_dict: dict[str, torch.Tensor], card: str, output: Path) -> None:
    """Write the folder as ``<output>.partial`` beside ``output``, then rename it over ``output`` (as checkpoints
    are written), so an interrupted export never leaves a folder that looks whole; an earlier model folder there is
    replaced (see :func:`check_output`). A failure removes the partial folder."""
    check_output(output)
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write_files(hparams, state_dict, card, partial)
        if output.exists():
            shutil.rmtree(output)
        os.replace(partial, output)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise CheckpointError(f"cannot write {output}: {error.strerror or error}") from None


def _write_files(hparams: dict[str, Any], state_dict: dict[str, torch.Tensor], card: str, partial: Path) -> None:
    partial.mkdir(parents=True)
    config = {key: value for key, value in hparams.items() if key != "vocab" and not key.startswith("_")}
    config["seqmodels"] = {"version": package_version(), "format": FOLDER_FORMAT}
    (partial / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (partial / VOCAB).write_text(json.dumps(hparams["vocab"], ensure_ascii=False) + "\n", encoding="utf-8")
    save_file({name: tensor.contiguous() for name, tensor in state_dict.items()}, partial / WEIGHTS,
              metadata={"format": "pt"})  # fmt: skip
    (partial / WEIGHTS).chmod(0o644)  # safetensors writes it readable by its owner only, unlike the others
    (partial / CARD).write_text(card, encoding="utf-8")


def check_present(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a seqmodels model folder has {CONFIG}, {VOCAB} and {WEIGHTS}")


def _read_json(path: Path) -> dict[str, Any]:
    check_present(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise CheckpointError(f"{path}: not valid JSON ({where}: {error.msg})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not UTF-8 text") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def check_vocab(vocab: dict[str, Any], path: Path) -> None:
    """One line naming ``path`` unless every vocabulary is a list of distinct strings and the word and character
    vocabularies have their padding and unknown entries first, as they were built."""
    for name, items in vocab.items():
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise CheckpointError(f"{path}: '{name}' must be a list of strings")
        if len(set(items)) != len(items):
            raise CheckpointError(f"{path}: '{name}' lists a string twice")
    for name in ("tokens", "chars"):
        if (name in vocab or name == "tokens") and vocab.get(name, [])[:2] != [PAD, UNK]:
            raise CheckpointError(f"{path}: '{name}' must start with {PAD!r} and {UNK!r}")


def read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The hyperparameters (with the vocabularies) and the weights of a model folder; :class:`CheckpointError`
    naming the file when one is missing, corrupt or from a newer format."""
    config = _read_json(folder / CONFIG)
    record = config.pop("seqmodels", None)
    if not isinstance(record, dict) or not isinstance(record.get("format"), int):
        raise CheckpointError(f"{folder / CONFIG} is not a seqmodels model config (no 'seqmodels' format record)")
    if record["format"] > FOLDER_FORMAT:
        raise CheckpointError(
            f"{folder} was written by seqmodels {record.get('version')} (folder format {record['format']}); this is "
            f"seqmodels {package_version()}, which reads folder formats up to {FOLDER_FORMAT}: upgrade seqmodels"
        )
    vocab = _read_json(folder / VOCAB)
    check_vocab(vocab, folder / VOCAB)
    weights = folder / WEIGHTS
    check_present(weights)
    try:
        state_dict = {current_name(name): tensor for name, tensor in load_file(weights).items()}  # any release's
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file (truncated or corrupt: {error})") from None
    return config | {"vocab": vocab}, state_dict


def resolve(source: str | Path) -> Path:
    """A local checkpoint file or model folder as it is; otherwise a Hub repository id (``org/name``), fetched
    with ``huggingface_hub.snapshot_download`` into its cache (which ``HF_HUB_OFFLINE=1`` reads without the
    network). :class:`CheckpointError` when it is neither."""
    path = Path(source)
    if path.exists():
        return path
    name = str(source)
    if path.suffix in (".ckpt", ".pt"):  # a checkpoint's name: model.ckpt, runs/last.ckpt
        raise CheckpointError(f"checkpoint not found: {source}")
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise CheckpointError(f"checkpoint not found: {source} (neither a file, a model folder nor a Hub repository "
                              "id such as org/name)")  # fmt: skip
    from huggingface_hub import snapshot_download  # imported here: it is slow to import, and most runs are local
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, allow_patterns=[CONFIG, VOCAB, WEIGHTS, CARD]))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"cannot fetch the Hub repository {name}: {first}") from None
