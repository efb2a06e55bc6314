"""The GPU check: one command that measures what the GPU path promises, on UD-EWT with configs/ud_upos.yaml.

    python benchmarks/gpu_check.py --data-dir ../shared/data              # on a GPU, about 3 minutes
    python benchmarks/gpu_check.py --data-dir ../shared/data --accelerator cpu --steps 10 --requests 100

It prints one JSON line per measurement, then a table:

- training tokens/s in 32-true, bf16-mixed and 16-mixed (Lightning, `--steps` optimizer steps), each
  against a minimal plain-PyTorch loop on the same batches on the same device, under the same autocast;
- the encoder's padding invariance on the device (cuDNN): the largest difference of `outputs` and `final`
  between a sentence padded to its own length and to 4x that, in float32 and under bf16 autocast;
- CPU against device predictions of one trained model on the UD test file: the share of identical tags
  and the largest difference of a tag's probability;
- peak device memory of a training step at batch 32, and the largest batch (powers of two) under 8 GB;
- `seqmodels-serve --device <device>` throughput at 32 concurrent clients (benchmarks/serve_load.py).

On the CPU (`--accelerator cpu`: what CI runs, so the script is known to work) 16-mixed does not exist,
bf16 runs only on CPUs with bf16 instructions, and the memory and CPU-against-device rows are left out,
each with a line that says so.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from lightning.fabric.utilities.apply_func import move_data_to_device
from throughput import ROOT, count, data_module, new_model, project_loop

from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor
from seqmodels.runs import cpu_runs_bf16_lstm
from seqmodels.models.encoder import LSTMEncoder

AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
NO_CPU_BF16 = None if cpu_runs_bf16_lstm() else "this CPU has no bf16 instructions"  # oneDNN's bf16 LSTM needs them
MEMORY_LIMIT = 8 * 1024**3


def plain_loop(model, loader, steps: int, device: torch.device, precision: str) -> tuple[float, int]:
    """A minimal PyTorch training loop on ``device`` under ``precision``'s autocast (and a gradient scaler for
    16-mixed), over the loader's first ``steps`` batches: (seconds, real tokens)."""
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    dtype = AUTOCAST[precision]
    tokens = 0
    synchronize(device)
    start = time.perf_counter()
    for _, batch in zip(range(steps), loader):
        lengths = batch["lengths"]
        inputs = move_data_to_device({k: v for k, v in batch.items() if k not in ("lengths", "tokens")}, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            scores = model(inputs["token_ids"], lengths, inputs.get("char_ids"), inputs.get("case_ids"))
            loss = sum(head.loss(scores[name], head.targets(inputs)) for name, head in model.heads.items())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(optimizer)
        scaler.update()
        tokens += count(batch)[0]
    synchronize(device)
    return time.perf_counter() - start, tokens


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_rows(config, data, initial, accelerator: str, device: torch.device, steps: int) -> list[dict]:
    rows = []
    for precision in AUTOCAST:
        if device.type == "cpu" and precision == "16-mixed":
            rows.append({"what": "training, 16-mixed", "skipped": "16-mixed is a GPU precision"})
            continue
        if device.type == "cpu" and precision == "bf16-mixed" and NO_CPU_BF16:
            rows.append({"what": "training, bf16-mixed", "skipped": NO_CPU_BF16})
            continue
        warm_up = min(steps, 10)  # untimed: kernels are chosen and built, the caches filled
        project_loop(copy.deepcopy(initial), data, warm_up, accelerator, precision)
        plain_loop(copy.deepcopy(initial), data.train_dataloader(), warm_up, device, precision)
        _, counter = project_loop(copy.deepcopy(initial), data, steps, accelerator, precision)
        project = counter.tokens / (counter.end - counter.start)
        plain_seconds, tokens = plain_loop(copy.deepcopy(initial), data.train_dataloader(), steps, device, precision)
        rows.append({"what": f"training tokens/s, {precision}", "project": round(project),
                     "minimal": round(tokens / plain_seconds), "ratio": round(project * plain_seconds / tokens, 3)})
    return rows


@torch.no_grad()
def padding_rows(config, vocab_size: int, device: torch.device) -> list[dict]:
    """Max |difference| of outputs/final between a sentence padded to its length and to 4x its length."""
    torch.manual_seed(0)
    encoder_config = {k: v for k, v in config["model"]["encoder"].items() if not k.startswith("char_")}
    encoder = LSTMEncoder(vocab_size, **encoder_config).to(device).eval()
    length = 17
    ids = torch.randint(2, vocab_size, (1, length), device=device)
    padded = torch.cat([ids, torch.zeros(1, 3 * length, dtype=torch.long, device=device)], dim=1)  # 4x its length
    rows = []
    for name, dtype in (("float32", None), ("bf16 autocast", torch.bfloat16)):
        if device.type == "cpu" and dtype is not None and NO_CPU_BF16:
            rows.append({"what": f"padding invariance, {name}", "skipped": NO_CPU_BF16})
            continue
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            short = encoder(ids, torch.tensor([length]))
            long = encoder(padded, torch.tensor([length]))
        rows.append({"what": f"padding invariance, {name}",
                     "outputs": float((short.outputs - long.outputs[:, :length]).abs().max()),
                     "final": float((short.final - long.final).abs().max()),
                     "padding_outputs_zero": bool(long.outputs[:, length:].abs().max() == 0)})  # fmt: skip
    return rows


def agreement_row(checkpoint: Path, sentences: list[list[str]], device: torch.device) -> dict:
    """CPU against ``device`` predictions of one checkpoint."""
    if device.type == "cpu":
        return {"what": "CPU against device predictions", "skipped": "the device is the CPU"}
    on_cpu = Predictor(load_model(checkpoint, "cpu"))(sentences)
    on_device = Predictor(load_model(checkpoint, str(device)))(sentences)
    pairs = [(a, b) for x, y in zip(on_cpu, on_device) for a, b in zip(x["tag_probs"], y["tag_probs"])]
    same = sum(t == u for x, y in zip(on_cpu, on_device) for t, u in zip(x["tags"], y["tags"]))
    return {"what": "CPU against device predictions", "identical_tags": round(same / len(pairs), 6),
            "max_prob_difference": max(abs(a - b) for a, b in pairs)}  # fmt: skip


def memory_rows(config, data, initial, device: torch.device) -> list[dict]:
    """Peak memory of training steps on the longest sentences, at batch 32, and the largest batch under 8 GB."""
    if device.type != "cuda":
        return [{"what": "peak device memory", "skipped": "no CUDA device"}]
    rows, batch_size, largest = [], 32, None
    while batch_size <= 4096:
        try:
            peak = peak_memory(config, data, initial, device, batch_size)
        except torch.OutOfMemoryError:
            break
        if batch_size == 32:
            rows.append({"what": "peak device memory, batch 32 (MiB)", "value": round(peak / 2**20)})
        if peak > MEMORY_LIMIT:
            break
        largest, batch_size = (batch_size, peak), batch_size * 2
    rows.append({"what": "largest batch under 8 GB (powers of two)", "batch": largest and largest[0],
                 "peak_mib": largest and round(largest[1] / 2**20)})  # fmt: skip
    return rows


def peak_memory(config, data, initial, device: torch.device, batch_size: int) -> int:
    """Peak allocated memory of 3 bf16 training steps on the longest training sentences at ``batch_size``."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    dataset = data.encoded["data"]["train"]
    longest = sorted(range(len(dataset)), key=lambda i: -dataset[i]["length"])[:batch_size]
    loader = torch.utils.data.DataLoader(dataset.with_format(columns=[c for c in dataset.column_names if c != "length"]),
                                         batch_size=batch_size, sampler=longest * 3,
                                         collate_fn=data.train_dataloader().collate_fn)  # fmt: skip
    plain_loop(copy.deepcopy(initial), loader, 3, device, "bf16-mixed")
    return torch.cuda.max_memory_allocated(device)


def serve_row(checkpoint: Path, inputs: list[Path], device: torch.device, requests: int) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), str(checkpoint), "--inputs", *map(str, inputs),
               "--requests", str(requests), "--clients", "32", "--server", "--device", str(device)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    phases = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"ok"')]
    if result.returncode != 0 or not phases:
        return {"what": f"seqmodels-serve --device {device}, 32 clients", "error": result.stderr.strip()[-500:]}
    keep = ("sentences_per_s", "tokens_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_batch", "lost", "differing")
    return {"what": f"seqmodels-serve --device {device}, 32 clients"} | {k: phases[0][k] for k in keep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SEQMODELS_DATA_DIR", "../shared/data"))
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per training measurement")
    parser.add_argument("--requests", type=int, default=2000, help="for the serving measurement")
    options = parser.parse_args()
    device = torch.device("cuda" if options.accelerator == "gpu" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check.py: error: no CUDA device; run with --accelerator cpu")
    ewt = Path(options.data_dir) / "ud_english_ewt"
    files = {"train_file": str(ewt / "en_ewt-ud-train.conllu"), "test_file": str(ewt / "en_ewt-ud-test.conllu")}
    config = yaml.safe_load((ROOT / "configs" / "ud_upos.yaml").read_text())
    rows = [{"what": "device", "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
             "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}]  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        data = data_module(config, files, str(Path(work) / "cache"))
        data.setup("fit")
        initial = new_model(config, data)
        rows += training_rows(config, data, initial, options.accelerator, device, options.steps)
        rows += padding_rows(config, len(data.vocab["tokens"]), device)
        trained = copy.deepcopy(initial)  # a model that has learned something, for the prediction rows
        plain_loop(trained, data.train_dataloader(), options.steps, device, "32-true")
        checkpoint = Path(work) / "model.ckpt"
        torch.save({"state_dict": trained.cpu().state_dict(), "hyper_parameters": dict(trained.hparams)}, checkpoint)
        rows.append(agreement_row(checkpoint, data.raw["data"]["test"]["tokens"], device))
        rows += memory_rows(config, data, initial, device)
        rows.append(serve_row(checkpoint, [ewt / "en_ewt-ud-test.conllu"], device, options.requests))
    for row in rows:
        print(json.dumps(row), flush=True)
    print()
    for row in rows:
        print(f"{row.pop('what'):<48} " + ", ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
