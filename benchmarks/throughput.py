"""Training and inference speed of the project against plain PyTorch loops, on real data.

    python benchmarks/throughput.py --data-dir ../shared/data [--steps 150]

For the UD-EWT tagger (configs/ud_upos.yaml: BiLSTM, hidden 256, 2 layers, char CNN) and the SST-2
classifier (configs/sst2.yaml), it prints a table and one JSON line per row:

- data preparation: a first run into an empty cache against a cached rerun;
- training tokens/s (real tokens, padding excluded) and the padding fraction of the positions processed:
  the project (Lightning, length-bucketed batches); a minimal plain-PyTorch loop over the same batches
  and the same model; a straightforward plain loop with random batches (packed), each as a ratio;
- inference tokens/s through the prediction path (``seqmodels.inference.predictor.Predictor``);
- peak resident memory of the process.

Every loop starts from the same initial weights, runs the same number of optimizer steps and loads
its batches as it goes (collation included). The project's tokens/s is timed over its training loop;
``Trainer.fit``'s one-off set-up has a row of its own. After an untimed warm-up, the project and the
minimal loop run twice each, in the order project, minimal, minimal, project.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from seqmodels.data.batching import BucketBatchSampler
from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.inference.predictor import Predictor
from seqmodels.models.sequence_model import SequenceModel

ROOT = Path(__file__).resolve().parents[1]
CLIP = 5.0  # configs/base.yaml's gradient_clip_val
WARMUP_STEPS = 20  # untimed steps before the first measurement


def data_module(config: dict, files: dict[str, str], cache_dir: str) -> SequenceDataModule:
    return SequenceDataModule(**{**config["data"], **files, "cache_dir": cache_dir})


def new_model(config: dict, data: SequenceDataModule, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    model = config["model"]
    return SequenceModel(data.vocab, encoder=model["encoder"], tagger=model.get("tagger"), classifier=model.get("classifier"))


def count(batch: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, positions processed) of a batch."""
    return int(batch["lengths"].sum()), batch["token_ids"].numel()


def plain_loop(model: SequenceModel, loader: torch.utils.data.DataLoader, steps: int) -> tuple[float, int, int]:
    """A minimal PyTorch training loop (no Lightning) over the loader's first ``steps`` batches, loading
    included: (seconds, real tokens, positions)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    tokens = positions = 0
    start = time.perf_counter()
    for _, batch in zip(range(steps), loader):
        scores = model(batch["token_ids"], batch["lengths"], batch.get("char_ids"), batch.get("case_ids"))
        loss = sum(head.loss(scores[name], head.targets(batch)) for name, head in model.heads.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        real, padded = count(batch)
        tokens, positions = tokens + real, positions + padded
    return time.perf_counter() - start, tokens, positions


class Counter(L.Callback):
    """Counts the real tokens and positions of the batches Lightning trains on, and times its training
    loop: from ``on_train_start`` (after ``Trainer.fit``'s set-up) to ``on_train_end``."""

    def __init__(self) -> None:
        self.tokens = self.positions = 0
        self.start = self.end = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens, positions = count(batch)
        self.tokens += tokens
        self.positions += positions


def project_loop(
    model: SequenceModel, data: SequenceDataModule, steps: int, accelerator: str = "cpu", precision: str = "32-true"
) -> tuple[float, Counter]:
    """Train with Lightning for ``steps`` optimizer steps: (seconds of the whole ``fit`` call, counter)."""
    counter = Counter()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=steps, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=CLIP,
        callbacks=[counter],
    )
    model.configure_optimizers = lambda: torch.optim.Adam(model.parameters(), lr=1e-3)  # as the plain loops
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return time.perf_counter() - start, counter


def measure(name: str, config_file: str, files: dict[str, str], steps: int) -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / config_file).read_text())
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = data_module(config, files, cache)
        data.encoded  # read, build the vocabularies, encode: into the empty cache
        first = time.perf_counter() - start
        start = time.perf_counter()
        data_module(config, files, cache).encoded
        cached = time.perf_counter() - start

        initial = new_model(config, data)
        data.setup("fit")
        plain_loop(copy.deepcopy(initial), data.train_dataloader(), WARMUP_STEPS)  # allocator, caches: not timed
        # Project, minimal, minimal, project: a steady drift in the shared machine's speed cancels out of
        # the ratio. The seeded loader gives every loop the same batches in the same order.
        projects = [project_loop(copy.deepcopy(initial), data, steps)]
        minimals = [plain_loop(copy.deepcopy(initial), data.train_dataloader(), steps) for _ in range(2)]
        projects.append(project_loop(copy.deepcopy(initial), data, steps))
        counter = projects[-1][1]
        project = sum(c.tokens for _, c in projects) / sum(c.end - c.start for _, c in projects)
        minimal = sum(tokens for _, tokens, _ in minimals) / sum(seconds for seconds, _, _ in minimals)
        setup = sum(seconds - (c.end - c.start) for seconds, c in projects) / len(projects)

        loader = data.train_dataloader()
        random_sampler = BucketBatchSampler(data.encoded["data"]["train"]["length"], data.batch_size, bucket=False, seed=0)
        loader = torch.utils.data.DataLoader(loader.dataset, batch_sampler=random_sampler, collate_fn=loader.collate_fn)
        seconds, tokens, positions = plain_loop(copy.deepcopy(initial), loader, steps)
        straightforward = tokens / seconds
        random_padding = 1 - tokens / positions

        sentences = data.raw["data"]["test"]["tokens"]
        predictor = Predictor(initial.eval(), batch_size=data.batch_size)
        start = time.perf_counter()
        predictor(sentences)
        inference = sum(map(len, sentences)) / (time.perf_counter() - start)

    padding = 1 - counter.tokens / counter.positions
    rows = [
        {"run": name, "what": "data preparation, first run (s)", "value": round(first, 2)},
        {"run": name, "what": "data preparation, cached rerun (s)", "value": round(cached, 2),
         "ratio": round(cached / first, 3)},
        {"run": name, "what": "Trainer.fit set-up and tear-down (s), once per run", "value": round(setup, 2)},
        {"run": name, "what": "training tokens/s, project (Lightning, bucketed)", "value": round(project),
         "padding": round(padding, 4)},
        {"run": name, "what": "training tokens/s, minimal plain loop, same batches", "value": round(minimal),
         "ratio": round(project / minimal, 3)},
        {"run": name, "what": "training tokens/s, plain loop, random batches, packed", "value": round(straightforward),
         "ratio": round(project / straightforward, 3), "padding": round(random_padding, 4)},
        {"run": name, "what": "inference tokens/s, prediction path", "value": round(inference)},
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per training loop")
    options = parser.parse_args()
    data = Path(options.data_dir).resolve()
    ewt, trees = data / "ud_english_ewt", data / "sst_trees"
    runs = {
        "ud_upos": ("configs/ud_upos.yaml", {"train_file": str(ewt / "en_ewt-ud-train.conllu"),
                                             "test_file": str(ewt / "en_ewt-ud-test.conllu")}),
        "sst2": ("configs/sst2.yaml", {"train_file": str(trees / "train.txt"), "test_file": str(trees / "test.txt")}),
    }
    rows = []
    for name, (config_file, files) in runs.items():
        for row in measure(name, config_file, files, options.steps):
            print(json.dumps(row), flush=True)
            rows.append(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": "peak resident memory (MiB)", "value": round(peak)}))
    print(f"\n{'run':<8} {'what':<56} {'value':>10} {'ratio':>7} {'padding':>8}")
    for row in rows:
        ratio = f"{row['ratio']:.3f}" if "ratio" in row else ""
        padding = f"{row['padding']:.2%}" if "padding" in row else ""
        print(f"{row['run']:<8} {row['what']:<56} {row['value']:>10} {ratio:>7} {padding:>8}")
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
