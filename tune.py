"""Search hyperparameters with Optuna: `python tune.py --config configs/NAME.yaml --search configs/search/NAME.yaml
[train.py options] --trials 30`. Each trial is a `train.py fit` run; see README.md, "Tuning"."""

from pathlib import Path

from seqmodels.tuning import run

if __name__ == "__main__":
    run(config_dir=Path(__file__).resolve().parent / "configs")
