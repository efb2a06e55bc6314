"""``seqmodels-export CHECKPOINT --format hub --output DIR``: a model folder to share (:mod:`.folder`), a valid
Hugging Face Hub model repository with a generated model card (:mod:`.model_card`); ``--push-to ORG/NAME``
uploads it with ``huggingface_hub.upload_folder``.

The folder holds the weights only (the checkpoint also holds the optimizer's state and the random number
generators'), and every entry point loads it, or its repository id, as it loads a checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from seqmodels.checkpoints import CheckpointError, read_checkpoint
from seqmodels.inference.folder import write_folder
from seqmodels.inference.loading import build_model
from seqmodels.inference.model_card import CardOptions, build_card


def language_code(value: str) -> str:
    if not (2 <= len(value) <= 3 and value.isascii() and value.isalpha() and value.islower()):
        raise argparse.ArgumentTypeError(f"expected an ISO 639 code such as en or fra, got {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    hub = parser.add_argument_group("--format hub (a model folder with a model card)")
    hub.add_argument("--license", help="the model's licence, as the Hub names it (e.g. cc-by-sa-4.0)")
    hub.add_argument("--language", nargs="+", type=language_code, help="ISO 639 codes (e.g. en)")
    hub.add_argument("--datasets", nargs="+", help="the training data's Hub ids or names (default: the train file's)")
    hub.add_argument("--seeds-from", nargs="+", type=Path, metavar="RUN",
                     help="run folders (logs/NAME/version_N) of the same config: their metrics' mean and std too")
    hub.add_argument("--repo-id", help="the repository id the card names (default: the folder's name)")
    hub.add_argument("--push-to", metavar="ORG/NAME", help="upload the folder there (needs `hf auth login`)")


def seed_runs(runs: list[Path] | None, config: str | None) -> list[Path]:
    """The ``--seeds-from`` run folders, checked: at least two distinct ones, each with its metrics and trained
    with the exported checkpoint's config (its ``model`` and ``data`` sections; the seed may differ)."""
    if not runs:
        return []
    if len({run.resolve() for run in runs}) != len(runs) or len(runs) < 2:
        raise CheckpointError(f"--seeds-from: expected at least two distinct run folders, got {[str(r) for r in runs]}")
    ours = yaml.safe_load(config or "{}") or {}
    for run in runs:
        if not (run / "metrics_fit.json").is_file() or not (run / "config.yaml").is_file():
            raise CheckpointError(f"--seeds-from {run}: not a finished run folder (no metrics_fit.json and "
                                  "config.yaml; expected logs/NAME/version_N)")  # fmt: skip
        theirs = yaml.safe_load((run / "config.yaml").read_text()) or {}
        if any(theirs.get(key) != ours.get(key) for key in ("model", "data")):
            raise CheckpointError(f"--seeds-from {run}: trained with another config than the checkpoint (its "
                                  "model or data section differs): not another seed of this model")  # fmt: skip
    return runs


def check_push(repo: str | None) -> None:
    """Fail before anything is written when ``--push-to`` cannot work: no login, or offline."""
    if not repo:
        return
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(f"--push-to {repo}: HF_HUB_OFFLINE is set; unset it to upload")
    if get_token() is None:
        raise CheckpointError(f"--push-to {repo}: not logged in to the Hugging Face Hub (run `hf auth login`, or set "
                              "HF_TOKEN)")  # fmt: skip


def push(output: Path, repo: str) -> None:
    import httpx
    from huggingface_hub import create_repo, upload_folder
    from huggingface_hub.errors import HfHubHTTPError

    try:
        create_repo(repo, exist_ok=True)
        upload_folder(repo_id=repo, folder_path=output, repo_type="model")
    except (HfHubHTTPError, httpx.HTTPError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"--push-to {repo}: the upload failed ({first}); {output} is written") from None


def publish(checkpoint: Path, output: Path, args: argparse.Namespace) -> str:
    """Write the model folder of ``checkpoint`` to ``output`` (and push it with ``--push-to``); a line saying what
    was written."""
    if checkpoint.is_dir():
        raise CheckpointError(f"--format hub makes a model folder from a checkpoint (.ckpt); {checkpoint} is a model "
                              "folder already")  # fmt: skip
    check_push(args.push_to)
    stored = read_checkpoint(checkpoint)  # read once, for the model and its card
    model = build_model(stored["hyper_parameters"], stored["state_dict"], checkpoint, checkpoint)  # it must load
    runs = seed_runs(args.seeds_from, stored.get("seqmodels", {}).get("config"))
    options = CardOptions(args.license, args.language, args.datasets, runs)
    repo = args.push_to or args.repo_id or output.name
    card = build_card(model, stored, checkpoint, repo, options)
    write_folder(dict(model.hparams), model.state_dict(), card, output)
    size = sum(file.stat().st_size for file in output.iterdir())
    mib = 2**20
    sizes = f"{size / mib:.1f} MiB; the checkpoint: {checkpoint.stat().st_size / mib:.1f} MiB"
    said = f"{output}: a model folder of {sizes}"
    if args.push_to:
        push(output, args.push_to)
        said += f"; pushed to https://huggingface.co/{args.push_to}"
    return said
