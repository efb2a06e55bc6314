"""``seqmodels-export CHECKPOINT --format hub --output DIR``: a model folder to share (:mod:`.folder`), a valid
Hugging Face Hub model repository with a generated model card (:mod:`.model_card`); ``--push-to ORG/NAME``
uploads it with ``huggingface_hub.upload_folder``.

The folder holds the weights only (the checkpoint also holds the optimizer's state and the random number
generators'), and every entry point loads it, or its repository id, as it loads a checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seqmodels.checkpoints import read_checkpoint
from seqmodels.inference.folder import write_folder
from seqmodels.inference.loading import load_model
from seqmodels.inference.model_card import CardOptions, build_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    hub = parser.add_argument_group("--format hub (a model folder with a model card)")
    hub.add_argument("--license", help="the model's licence, as the Hub names it (e.g. cc-by-sa-4.0)")
    hub.add_argument("--language", nargs="+", help="ISO 639-1 codes (e.g. en)")
    hub.add_argument("--datasets", nargs="+", help="the training data's Hub ids or names (default: the train file's)")
    hub.add_argument("--seeds-from", nargs="+", type=Path, metavar="RUN",
                     help="run folders (logs/NAME/version_N) of the same config: their metrics' mean and std too")
    hub.add_argument("--repo-id", help="the repository id the card names (default: the folder's name)")
    hub.add_argument("--push-to", metavar="ORG/NAME", help="upload the folder there (needs `hf auth login`)")


def publish(checkpoint: Path, output: Path, args: argparse.Namespace) -> str:
    """Write the model folder of ``checkpoint`` to ``output`` (and push it with ``--push-to``); a line saying what
    was written."""
    model = load_model(checkpoint)  # checked here first: a checkpoint that cannot be loaded is never published
    stored = read_checkpoint(checkpoint)
    options = CardOptions(args.license, args.language, args.datasets, args.seeds_from)
    repo = args.push_to or args.repo_id or output.name
    card = build_card(model, stored, checkpoint, repo, options)
    write_folder(dict(model.hparams), model.state_dict(), card, output)
    size = sum(file.stat().st_size for file in output.iterdir())
    mib = 2**20
    sizes = f"{size / mib:.1f} MiB; the checkpoint: {checkpoint.stat().st_size / mib:.1f} MiB"
    said = f"{output}: a model folder of {sizes}"
    if args.push_to:
        from huggingface_hub import create_repo, upload_folder

        create_repo(args.push_to, exist_ok=True)
        upload_folder(repo_id=args.push_to, folder_path=output, repo_type="model")
        said += f"; pushed to https://huggingface.co/{args.push_to}"
    return said
