"""The benchmark scripts run: the GPU check on the CPU (what CI can run of it, so it is known to work)."""

import json
import os

import pytest
from helpers import ROOT, run

from seqmodels.cli import cpu_runs_bf16_lstm

DATA_DIR = os.environ.get("SEQMODELS_DATA_DIR")


@pytest.mark.slow
@pytest.mark.skipif(not DATA_DIR, reason="set SEQMODELS_DATA_DIR to the shared data folder (UD-EWT)")
def test_the_gpu_check_runs_on_the_cpu(tmp_path):
    command = ["python", str(ROOT / "benchmarks" / "gpu_check.py"), "--data-dir", DATA_DIR, "--accelerator", "cpu",
               "--steps", "4", "--requests", "60"]  # fmt: skip
    result = run(command, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["what"]: row for row in map(json.loads, (l for l in result.stdout.splitlines() if l.startswith("{")))}
    cpu_bf16 = cpu_runs_bf16_lstm()
    if not cpu_bf16:
        assert "skipped" in rows["training, bf16-mixed"] and "skipped" in rows["padding invariance, bf16 autocast"]
    for precision in ("32-true", "bf16-mixed") if cpu_bf16 else ("32-true",):
        row = rows[f"training tokens/s, {precision}"]
        assert row["project"] > 0 and row["minimal"] > 0 and row["ratio"] > 0
    assert "skipped" in rows["training, 16-mixed"] and "skipped" in rows["peak device memory"]
    assert rows["padding invariance, float32"]["outputs"] < 1e-5 and rows["padding invariance, float32"]["final"] < 1e-5
    assert rows["padding invariance, float32"]["padding_outputs_zero"]
    serve = rows["seqmodels-serve --device cpu, 32 clients"]
    assert serve["lost"] == serve["differing"] == 0 and serve["tokens_per_s"] > 0
