"""Raw against averaged weights: train each case, then score its best and last checkpoints on validation twice, with
the averaged weights the checkpoint keeps (``state_dict``) and with the raw weights beside them
(``current_model_state``). Prints one JSON line per run and checkpoint.

    python benchmarks/averaging.py --data-dir ../shared/data [--only xpos_392 stsa_2_epochs] [--seeds 1] [--first-seed 0]
        [-- OPTIONS]

It scores the checkpoints itself (``train.py validate`` on each set of weights, with no averaging callback), so it
measures code from before ``val_raw/...`` was logged the same way. Options after ``--`` go to every run, e.g.
``--weight_averaging.max_share 0.2``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from seqmodels.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cases(data: Path) -> dict[str, tuple[str, list[str]]]:
    """Case name -> (its validation metric, the arguments of ``train.py fit``)."""
    ud = [f"--data.{split}_file={data / 'ud_english_ewt' / f'en_ewt-ud-{name}.conllu'}"
          for split, name in (("train", "train"), ("val", "dev"))]  # fmt: skip
    stsa = [f"--data.{split}_file={data / 'sst2' / f'stsa.binary.{name}'}" for split, name in (("train", "train"),
                                                                                                 ("val", "dev"))]
    sst = [f"--data.{split}_file={data / 'sst_trees' / f'{name}.txt'}" for split, name in (("train", "train"),
                                                                                             ("val", "dev"))]
    tagger, classifier = "val/tagger/acc", "val/classifier/acc"
    return {
        # ud_upos.yaml on XPOS, for 2 epochs of UD-EWT: shorter than the average's 3-epoch span
        "xpos_392": (tagger, ["--config", "configs/ud_upos.yaml", *ud, "--data.tag_column=xpos",
                              "--trainer.max_steps=392"]),  # fmt: skip
        "stsa_2_epochs": (classifier, ["--config", "configs/text_classification.yaml", *stsa,
                                       "--trainer.max_epochs=2"]),  # fmt: skip
        "ud_upos": (tagger, ["--config", "configs/ud_upos.yaml", *ud]),
        "sst2": (classifier, ["--config", "configs/sst2.yaml", *sst]),
        "text_classification": (classifier, ["--config", "configs/text_classification.yaml", *stsa]),
    }


def score(args: list[str], checkpoint: dict, weights: str, metric: str, folder: Path) -> float:
    """The validation metric of one set of the checkpoint's weights."""
    path = folder / f"{weights}.ckpt"
    torch.save({**checkpoint, "state_dict": checkpoint[weights]}, path)
    with contextlib.redirect_stdout(io.StringIO()):  # its metrics table: stdout is for the JSON lines
        cli = main(["validate", *args, f"--ckpt_path={path}", "--weight_averaging=null", "--trainer.logger=false",
                    f"--trainer.default_root_dir={folder}", "--trainer.enable_progress_bar=false"],
                   config_dir=ROOT / "configs")  # fmt: skip
    return round(100 * float(cli.trainer.callback_metrics[metric]), 2)


def measure(name: str, metric: str, args: list[str], seed: int) -> list[dict]:
    """Train one case, then score its best and last checkpoints with both sets of weights."""
    fitted = main(["fit", *args, f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
                   f"--trainer.logger.init_args.name=averaging_{name}"], config_dir=ROOT / "configs")  # fmt: skip
    callback = fitted.trainer.checkpoint_callback
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for which, path in (("best", callback.best_model_path), ("last", callback.last_model_path)):
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
            rows.append({"case": name, "seed": seed, "checkpoint": which, "step": checkpoint["global_step"],
                         "averaged": score(args, checkpoint, "state_dict", metric, Path(folder)),
                         "raw": score(args, checkpoint, "current_model_state", metric, Path(folder)),
                         "metric": metric, "args": args})  # fmt: skip
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--seeds", type=int, default=1, help="runs per case, with seeds --first-seed, +1, ...")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("extra", nargs="*", help="after --: more train.py options for every run")
    options = parser.parse_args()
    all_cases = cases(Path(options.data_dir).resolve())
    os.chdir(ROOT)
    for name in options.only or all_cases:
        metric, args = all_cases[name]
        for seed in range(options.first_seed, options.first_seed + options.seeds):
            for row in measure(name, metric, args + options.extra, seed):
                print(json.dumps(row), flush=True)
