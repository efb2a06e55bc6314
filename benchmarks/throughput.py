"""Training and inference speed of the project against plain PyTorch loops, on real data.

    python benchmarks/throughput.py --data-dir ../shared/data [--steps 150] [--rounds 3]

For the UD-EWT tagger (configs/ud_upos.yaml: BiLSTM, hidden 256, 2 layers, char BiLSTM) and the SST-2
classifier (configs/sst2.yaml), it prints a table and one JSON line per row:

- data preparation: a first run into an empty cache against a cached rerun;
- training tokens/s (real tokens, padding excluded) and the padding fraction of the positions processed:
  the configured run (``train.py fit`` with the shipped config: its callbacks, TensorBoard logger, weight
  averaging and logging cadence; the validation at its last step and the checkpoint after it not timed); the
  project on a bare ``Trainer`` (no logger, no callbacks); a minimal plain-PyTorch loop over the same batches and
  the same model, and the same with the LSTM packed instead of masked (``model.encoder.kernel``: ``auto`` runs
  masked on the CPU); a straightforward plain loop with random batches (packed), each as a ratio;
- where the configured run's time goes that the bare Trainer's does not: Lightning's ``SimpleProfiler`` over one
  more configured run, each callback's per-step hooks in ms per step;
- the same in ``bf16-mixed`` on CPUs with bf16 instructions (AVX-512 BF16, AMX; skipped elsewhere);
- inference tokens/s through the prediction path (``seqmodels.inference.predictor.Predictor``), fp32 (also with
  the LSTM packed) and bf16
  (autocast; bf16's accuracy and agreement with fp32, on trained models: ``benchmarks/inference.py``);
- the machine's matmul peak (a large ``torch.mm``, fp32 and bf16) and each loop's model GFLOP/s as a fraction of it,
  counting the LSTM only: a token costs ``8·h·(d+h)`` FLOPs per layer and direction forward (4 gates, each a
  matrix-vector product over input ``d`` and state ``h``), 3x that in training (forward, and the backward
  pass's two products);
- peak resident memory of the process.

Every loop starts from the same initial weights (the configured run from the config's seed), runs the same number
of optimizer steps and loads its batches as it goes (collation included). The project's tokens/s is timed over its
training loop, without ``Trainer.fit``'s one-off set-up. After an untimed pass over the same batches (every batch
shape once: oneDNN builds its kernels per shape), the loops take turns in ``--rounds`` rounds; each ratio is the
median of the rounds' ratios, with their range, because the machine's speed drifts by 10-30% over minutes.
The loops use the config's Adam (``fused`` or not); the minimal loop also runs with the other one, to show what
the fused CPU kernel gains.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.profilers import SimpleProfiler

from seqmodels.cli import main as train_py
from seqmodels.data.batching import BucketBatchSampler
from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.inference.predictor import Predictor
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.runs import cpu_runs_bf16_lstm

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


def plain_loop(model: SequenceModel, loader: torch.utils.data.DataLoader, steps: int, **adam: Any
               ) -> tuple[float, int, int]:  # fmt: skip
    """A minimal PyTorch training loop (no Lightning) over the loader's first ``steps`` batches, loading
    included: (seconds, real tokens, positions). ``adam``: more options of ``torch.optim.Adam`` (``fused=True``)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **adam)
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
    loop: from ``on_train_start`` (after ``Trainer.fit``'s set-up) to ``on_train_end``, less each validation
    and what follows it until the next training batch (checkpointing, early stopping)."""

    def __init__(self) -> None:
        self.tokens = self.positions = 0
        self.start = self.end = 0.0
        self.paused: float | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.paused = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._resume()

    def _resume(self) -> None:
        if self.paused is not None:
            self.start += time.perf_counter() - self.paused
            self.paused = None

    def on_train_end(self, trainer, pl_module) -> None:
        self._resume()
        self.end = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        tokens, positions = count(batch)
        self.tokens += tokens
        self.positions += positions


def project_loop(
    model: SequenceModel, data: SequenceDataModule, steps: int, accelerator: str = "cpu", precision: str = "32-true",
    fused: bool = False,
) -> tuple[float, Counter]:
    """Train with Lightning for ``steps`` optimizer steps: (seconds of the whole ``fit`` call, counter)."""
    counter = Counter()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=steps, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=CLIP,
        callbacks=[counter],
    )
    model.configure_optimizers = lambda: torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)  # as plain loops
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return time.perf_counter() - start, counter


def configured_loop(
    config_file: str, files: dict[str, str], steps: int, root: str, profile: bool = False
) -> tuple[Counter, SimpleProfiler | None]:
    """``train.py fit --config CONFIG`` for ``steps`` optimizer steps, as a user launches it (logger, callbacks,
    weight averaging, logging cadence; validated once, at the last step, untimed): its counter, and its profiler."""
    counter = Counter()
    args = ["fit", "--config", str(ROOT / config_file), *[f"--data.{key}={path}" for key, path in files.items()],
            f"--trainer.max_steps={steps}", f"--data.cache_dir={root}/cache",
            f"--trainer.logger.init_args.save_dir={root}/logs"]  # fmt: skip
    args += ["--trainer.profiler=simple"] if profile else []
    with contextlib.redirect_stdout(io.StringIO()):  # its progress lines and metric tables
        cli = train_py(args, callbacks=[counter])
    return counter, cli.trainer.profiler if profile else None


TRAINING_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
                  "on_before_optimizer_step", "on_before_zero_grad")  # what runs every step, in the timed loop


def callback_costs(profiler: SimpleProfiler, steps: int) -> dict[str, float]:
    """Milliseconds per step in each callback's per-step hooks (``[Callback]NAME.hook``, :data:`TRAINING_HOOKS`)."""
    costs: dict[str, float] = {}
    for action, durations in profiler.recorded_durations.items():
        if action.startswith("[Callback]") and action.endswith(TRAINING_HOOKS):
            name = action.removeprefix("[Callback]").split(".")[0].split("{")[0]
            costs[name] = costs.get(name, 0.0) + 1000 * sum(durations) / steps
    return dict(sorted(costs.items(), key=lambda item: -item[1]))


def lstm_flops_per_token(model: SequenceModel, training: bool) -> float:
    """The LSTM's FLOPs per token: 8·h·(d+h) per layer and direction forward, 3x in training (module docstring)."""
    lstm = model.encoder.lstm
    directions = 2 if lstm.bidirectional else 1
    flops = 0
    for layer in range(lstm.num_layers):
        d = lstm.input_size if layer == 0 else directions * lstm.hidden_size
        flops += directions * 8 * lstm.hidden_size * (d + lstm.hidden_size)
    return flops * (3 if training else 1)


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 20) -> float:
    """GFLOP/s of a large square ``torch.mm`` with torch's threads: the machine's practical peak."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def predict_seconds(predictor: Predictor, sentences: list[list[str]]) -> float:
    """Seconds of one ``predictor`` call over ``sentences``."""
    predictor(sentences[:64])  # oneDNN builds its kernels once per shape and dtype: not timed
    start = time.perf_counter()
    predictor(sentences)
    return time.perf_counter() - start


def in_rounds(loops: dict[str, Callable[[], tuple[int, float]]], rounds: int) -> dict[str, list[float]]:
    """Each loop's tokens/s in each of ``rounds`` rounds, the loops taking turns within a round (in reverse order
    every other round). A ratio of two loops is then taken within each round, and its median over the rounds is
    reported: the machine's speed drifts by 10-30% over minutes, which cancels within a round."""
    speeds: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(rounds):
        for name in list(loops)[:: -1 if round_ % 2 else 1]:
            tokens, seconds = loops[name]()
            speeds[name].append(tokens / seconds)
    return speeds


def ratio(speeds: dict[str, list[float]], of: str, to: str) -> dict[str, Any]:
    """The median over the rounds of ``of``'s tokens/s over ``to``'s, and the range of the rounds' ratios."""
    ratios = sorted(a / b for a, b in zip(speeds[of], speeds[to]))
    return {"ratio": round(statistics.median(ratios), 3), "range": [round(ratios[0], 3), round(ratios[-1], 3)]}


def measure(name: str, config_file: str, files: dict[str, str], val_file: str, steps: int, rounds: int,
            peaks: dict[str, float]) -> list[dict[str, Any]]:  # fmt: skip
    config = yaml.safe_load((ROOT / config_file).read_text())
    bf16 = "bf16" in peaks
    fused = bool(config["model"]["optimizer"].get("init_args", {}).get("fused", False))  # the config's Adam
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
        plain_loop(copy.deepcopy(initial), data.train_dataloader(), steps)  # every batch shape once: not timed
        run_files = files | {"val_file": val_file}
        loader = data.train_dataloader()
        random_sampler = BucketBatchSampler(data.encoded["data"]["train"]["length"], data.batch_size, bucket=False, seed=0)
        random_batches = torch.utils.data.DataLoader(loader.dataset, batch_sampler=random_sampler,
                                                     collate_fn=loader.collate_fn)  # fmt: skip
        sentences = list(data.raw["data"]["test"]["tokens"])  # lists, as users pass them: not a lazy Arrow column
        predictors = {"fp32": Predictor(copy.deepcopy(initial).eval(), batch_size=data.batch_size)}
        predictors["fp32_packed"] = Predictor(copy.deepcopy(initial).eval(), batch_size=data.batch_size)
        predictors["fp32_packed"].model.encoder.kernel = "packed"
        if bf16:
            predictors["bf16"] = Predictor(copy.deepcopy(initial), batch_size=data.batch_size, precision="bf16")
        counts: dict[str, tuple[int, int]] = {}  # loop: (real tokens, positions) of its last round

        def counted(loop: str, tokens: int, positions: int, seconds: float) -> tuple[int, float]:
            counts[loop] = (tokens, positions)
            return tokens, seconds

        def configured() -> tuple[int, float]:
            counter = configured_loop(config_file, run_files, steps, cache)[0]
            return counter.tokens, counter.seconds

        def project(precision: str = "32-true") -> tuple[int, float]:
            counter = project_loop(copy.deepcopy(initial), data, steps, precision=precision, fused=fused)[1]
            return counted("project", counter.tokens, counter.positions, counter.seconds)

        def plain(batches: torch.utils.data.DataLoader, loop: str, kernel: str = "auto", **adam: Any
                  ) -> tuple[int, float]:  # fmt: skip
            model = copy.deepcopy(initial)
            model.encoder.kernel = kernel
            seconds, tokens, positions = plain_loop(model, batches, steps, **adam)
            return counted(loop, tokens, positions, seconds)

        def predict(precision: str) -> tuple[int, float]:
            return sum(map(len, sentences)), predict_seconds(predictors[precision], sentences)

        # The seeded loaders give every loop the same batches in the same order.
        loops = {
            "configured": configured,
            "project": project,
            "minimal": lambda: plain(data.train_dataloader(), "minimal", fused=fused),
            "minimal_other_adam": lambda: plain(data.train_dataloader(), "minimal_other_adam", fused=not fused),
            "minimal_packed": lambda: plain(data.train_dataloader(), "minimal_packed", "packed", fused=fused),
            "straightforward": lambda: plain(random_batches, "straightforward", "packed", fused=fused),
            "inference": lambda: predict("fp32"),
            "inference_packed": lambda: predict("fp32_packed"),
        }
        if bf16:
            loops |= {"project_bf16": lambda: project("bf16-mixed"), "inference_bf16": lambda: predict("bf16")}
        speeds = in_rounds(loops, rounds)
        costs = callback_costs(configured_loop(config_file, run_files, steps, cache, profile=True)[1], steps)

    train_flops, predict_flops = (lstm_flops_per_token(initial, training) / 1e9 for training in (True, False))

    def speed(what: str, loop: str, flops: float, peak: str = "fp32", **more: Any) -> dict[str, Any]:
        """A tokens/s row (the median of the rounds), with the LSTM's GFLOP/s and their fraction of the peak."""
        tokens_per_s = statistics.median(speeds[loop])
        gflops = tokens_per_s * flops
        return {"run": name, "what": what, "value": round(tokens_per_s), "gflops": round(gflops, 1),
                "of_peak": round(gflops / peaks[peak], 3), **more}  # fmt: skip

    def padding(loop: str) -> float:
        tokens, positions = counts[loop]
        return round(1 - tokens / positions, 4)

    rows = [
        {"run": name, "what": "data preparation, first run (s)", "value": round(first, 2)},
        {"run": name, "what": "data preparation, cached rerun (s)", "value": round(cached, 2),
         "ratio": round(cached / first, 3)},
        speed("training tokens/s, configured run (train.py fit)", "configured", train_flops,
              **ratio(speeds, "configured", "minimal"), ratio_to="minimal"),
        *[{"run": name, "what": f"  in {callback} hooks (ms per step)", "value": round(ms, 2)}
          for callback, ms in costs.items() if ms >= 0.05],
        speed("training tokens/s, project (bare Trainer, bucketed)", "project", train_flops,
              **ratio(speeds, "project", "minimal"), ratio_to="minimal", padding=padding("project")),
        speed(f"training tokens/s, minimal plain loop, same batches{', fused Adam' * fused}", "minimal", train_flops),
        speed(f"training tokens/s, minimal plain loop, {'default' if fused else 'fused'} Adam", "minimal_other_adam",
              train_flops, **ratio(speeds, "minimal_other_adam", "minimal"), ratio_to="minimal"),
        speed("training tokens/s, minimal plain loop, packed LSTM", "minimal_packed", train_flops,
              **ratio(speeds, "minimal_packed", "minimal"), ratio_to="minimal"),
        speed("training tokens/s, plain loop, random batches, packed", "straightforward", train_flops,
              **ratio(speeds, "project", "straightforward"), ratio_to="project over it",
              padding=padding("straightforward")),
        speed("inference tokens/s, prediction path", "inference", predict_flops,
              **ratio(speeds, "inference", "project"), ratio_to="training"),
        speed("inference tokens/s, prediction path, packed LSTM", "inference_packed", predict_flops,
              **ratio(speeds, "inference_packed", "inference"), ratio_to="inference"),
    ]
    if bf16:
        rows += [
            speed("training tokens/s, project, bf16-mixed", "project_bf16", train_flops, "bf16",
                  **ratio(speeds, "project_bf16", "project"), ratio_to="fp32"),
            speed("inference tokens/s, prediction path, bf16 autocast", "inference_bf16", predict_flops, "bf16",
                  **ratio(speeds, "inference_bf16", "inference"), ratio_to="fp32"),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per training loop")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in which every loop runs once")
    options = parser.parse_args()
    data = Path(options.data_dir).resolve()
    ewt, trees = data / "ud_english_ewt", data / "sst_trees"
    runs = {
        "ud_upos": ("configs/ud_upos.yaml", {"train_file": str(ewt / "en_ewt-ud-train.conllu"),
                                             "test_file": str(ewt / "en_ewt-ud-test.conllu")},
                    str(ewt / "en_ewt-ud-dev.conllu")),
        "sst2": ("configs/sst2.yaml", {"train_file": str(trees / "train.txt"), "test_file": str(trees / "test.txt")},
                 str(trees / "dev.txt")),
    }
    peaks = {"fp32": matmul_peak(torch.float32)}
    if cpu_runs_bf16_lstm():
        peaks["bf16"] = matmul_peak(torch.bfloat16)
    rows = [{"run": "machine", "what": f"matmul peak GFLOP/s, {dtype}", "value": round(peak, 1)}
            for dtype, peak in peaks.items()]  # fmt: skip
    for row in rows:
        print(json.dumps(row), flush=True)
    for name, (config_file, files, val_file) in runs.items():
        for row in measure(name, config_file, files, val_file, options.steps, options.rounds, peaks):
            print(json.dumps(row), flush=True)
            rows.append(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": "peak resident memory (MiB)", "value": round(peak)}))
    print(f"\n{'run':<8} {'what':<56} {'value':>10} {'ratio':>7} {'range':>13} {'padding':>8} {'GFLOP/s':>8} "
          f"{'of peak':>7}")  # fmt: skip
    for row in rows:
        times = f"{row['ratio']:.3f}" if "ratio" in row else ""
        spread = "{:.3f}-{:.3f}".format(*row["range"]) if "range" in row else ""
        padding = f"{row['padding']:.2%}" if "padding" in row else ""
        gflops, of_peak = (f"{row['gflops']:.1f}", f"{row['of_peak']:.1%}") if "gflops" in row else ("", "")
        print(f"{row['run']:<8} {row['what']:<56} {row['value']:>10} {times:>7} {spread:>13} {padding:>8} {gflops:>8} "
              f"{of_peak:>7}")  # fmt: skip
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
