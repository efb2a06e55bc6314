"""Train, evaluate or predict: `python train.py fit|validate|test|predict --config configs/NAME.yaml`.

Bare `python train.py` runs `fit --config configs/default.yaml`. See README.md.
"""

from pathlib import Path

from seqmodels.cli import main

if __name__ == "__main__":
    main(config_dir=Path(__file__).resolve().parent / "configs")
