"""The benchmark scripts run: the GPU check on the CPU (what CI can run of it, so it is known to work), every
docs/results.md result's command is one that train.py takes (and every one the docs run is a result), and
ud_upos.yaml's step budget is the 25 epochs it replaced."""

import json
import os
import re
from pathlib import Path

import pytest
from helpers import ROOT, run

from seqmodels.cli import resolved_config
from seqmodels.runs import cpu_runs_bf16_lstm

# Absolute: the scripts run as subprocesses in other folders, and the variable may be relative to this one.
DATA_DIR = os.environ.get("SEQMODELS_DATA_DIR") and str(Path(os.environ["SEQMODELS_DATA_DIR"]).resolve())
ONLY = r"results\.py(?:(?!\.py)[^`])*?--only\s+((?:[a-z0-9_]+ ?)+)"  # the rows that a results.py command runs


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


@pytest.mark.skipif(not DATA_DIR, reason="set SEQMODELS_DATA_DIR to the shared data folder (results.py's files)")
def test_every_readme_result_is_a_command_train_py_takes(monkeypatch):
    """Each row of benchmarks/results.py (docs/results.md's Real data table) resolves to a config: its configs and
    flags parse, and the training files it names are the ones the config reads."""
    monkeypatch.chdir(ROOT)  # results.py runs from the repository root
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import results

    for name, (_, args) in results.runs(Path(DATA_DIR).resolve()).items():
        config = resolved_config(args, ROOT / "configs")
        assert isinstance(config, dict), f"{name}: train.py does not take {args}"
        train_files = dict(arg.split("=", 1) for arg in args if "train_file=" in arg)  # flag -> its last value
        assert train_files and all(file in json.dumps(config) for file in train_files.values()), name


@pytest.mark.skipif(not DATA_DIR, reason="set SEQMODELS_DATA_DIR to the shared data folder (results.py's files)")
def test_every_result_the_docs_run_is_one_of_results_py(monkeypatch):
    """``results.py ... --only NAME ...`` in the README and docs (wrapped or not) names rows that results.py has, so
    a row renamed after a config change takes its commands along."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import results

    rows, named = set(results.runs(Path(DATA_DIR).resolve())), {}
    for path in [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for names in re.findall(ONLY, path.read_text(encoding="utf-8")):
            named.update(dict.fromkeys(names.split(), path.name))
    assert "ud_upos" in named  # README's command, found
    assert not (unknown := {name: page for name, page in named.items() if name not in rows}), unknown


@pytest.mark.skipif(not DATA_DIR, reason="set SEQMODELS_DATA_DIR to the shared data folder (UD-EWT)")
def test_ud_upos_step_budget_is_its_earlier_25_epochs_of_ud_ewt():
    """ud_upos.yaml's max_steps is 25 epochs of UD-EWT's training set, so its full UD-EWT results are the runs that
    the earlier 25-epoch cap made (docs/results.md); a new batch size or treebank release must move it too."""
    config = resolved_config(["--config", "configs/ud_upos.yaml"], ROOT / "configs")
    text = (Path(DATA_DIR) / "ud_english_ewt" / "en_ewt-ud-train.conllu").read_text(encoding="utf-8")
    sentences = sum(1 for block in text.split("\n\n") if block.strip())
    batches_per_epoch = -(-sentences // config["data"]["batch_size"])
    assert config["trainer"]["max_epochs"] is None
    assert config["trainer"]["max_steps"] == 25 * batches_per_epoch
