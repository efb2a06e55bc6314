"""tune.py: a killed search continues without losing or repeating a trial, pruning is recorded, best.yaml is a
config train.py takes, and bad input is one line."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import CONFIGS, ROOT, child_env

from seqmodels.cli import resolved_config
from seqmodels.tuning import PRUNERS, tune

TINY = ["--config", str(CONFIGS / "classifier.yaml"), "--data.train_size", "120", "--data.val_size", "24",
        "--data.test_size", "24", "--trainer.max_epochs", "2", "--model.encoder.embedding_dim", "8",
        "--data.cache_dir", "cache"]  # fmt: skip
SPACE = {"model.optimizer.init_args.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True},
         "model.encoder.hidden_size": {"type": "int", "low": 8, "high": 16, "step": 8},
         "model.classifier.dropout": {"type": "categorical", "choices": [0.1, 0.3]}}  # fmt: skip


def write_space(folder: Path, space: dict) -> Path:
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def tune_py(cwd: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "tune.py"), *TINY, "--search", "space.yaml", "--name", "tiny", *args]
    return subprocess.Popen(command, cwd=cwd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_search_continues_and_loses_or_repeats_no_trial(tmp_path):
    write_space(tmp_path, SPACE)
    first = tune_py(tmp_path, "--trials", "3", "--heartbeat", "1")
    started = tmp_path / "logs" / "tune" / "tiny" / "version_1"
    deadline = time.monotonic() + 240
    while not started.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # in trial 1, after trial 0 finished
    assert first.wait(timeout=30) == -signal.SIGKILL
    storage = f"sqlite:///{tmp_path / 'logs' / 'tune' / 'tiny.db'}"
    before = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state for t in before] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    time.sleep(3)  # longer than the grace period (2 heartbeats): trial 1 is stale now

    second = tune_py(tmp_path, "--trials", "3", "--heartbeat", "1")
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    assert "LightningCLI's args parameter" not in err  # tune.py's own arguments are not the trials'
    after = optuna.load_study(study_name="tiny", storage=storage).trials
    states = [t.state.name for t in after]
    assert states.count("COMPLETE") + states.count("PRUNED") == 3 and states[1] == "FAIL"  # the killed one
    assert len(after) > len(before) and [t.number for t in after] == list(range(len(after)))
    assert after[0].value == before[0].value and after[0].params == before[0].params  # kept, not rerun
    retry = next(t for t in after if t.system_attrs.get("failed_trial") == 1)
    assert retry.params == after[1].params and retry.state.name in ("COMPLETE", "PRUNED")  # retried once
    ran = [int(line.split()[1].rstrip(":")) for line in out.splitlines() if line.startswith("trial ")]
    assert ran == [t.number for t in after[2:]] and 0 not in ran  # only new trials ran: trial 0 was kept
    assert (tmp_path / "logs" / "tune" / "tiny" / "best.yaml").is_file()


@pytest.mark.slow
def test_best_yaml_is_a_config_train_py_takes_after_the_tasks_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = tune(TINY, write_space(tmp_path, SPACE), trials=2, config_dir=CONFIGS)
    best = tmp_path / "logs" / "tune" / "classifier" / "best.yaml"
    assert yaml.safe_load(best.read_text())["model"]["encoder"]["hidden_size"] == study.best_params[
        "model.encoder.hidden_size"]  # fmt: skip
    own, printed = (resolved_config([*TINY, *more], CONFIGS) for more in ([], ["--config", str(best)]))
    # The encoder is a dict, which a later config replaces whole: its settings the search left alone stay.
    assert printed["model"]["encoder"] == own["model"]["encoder"] | {"hidden_size": study.best_params[
        "model.encoder.hidden_size"]}  # fmt: skip
    assert printed["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(study.best_params["model.optimizer.init_args.lr"])
    assert printed["model"]["optimizer"]["class_path"] == "torch.optim.Adam"  # the config's, kept
    assert printed["model"]["classifier"]["dropout"] == study.best_params["model.classifier.dropout"]


def test_a_pruned_trial_is_recorded_as_pruned(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pruner = optuna.pruners.ThresholdPruner(lower=2.0)  # an accuracy is never 2: prune at the first report
    study = tune(TINY, write_space(tmp_path, SPACE), trials=1, pruner=pruner, config_dir=CONFIGS)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values
    assert "-> pruned after epoch 0" in capsys.readouterr().out
    assert not (tmp_path / "logs" / "tune" / "classifier" / "best.yaml").exists()  # no finished trial


@pytest.mark.parametrize("name", ["median", "hyperband"])
def test_no_trial_is_pruned_before_its_warmup_epochs_end(name):
    study = optuna.create_study(direction="maximize", pruner=PRUNERS[name](3))
    for _ in range(3):  # three finished trials at 0.9 every epoch
        trial = study.ask()
        for epoch in range(6):
            trial.report(0.9, step=epoch)  # the step is the epoch, as optuna-integration's callback reports it
        study.tell(trial, 0.9)
    trial = study.ask()  # a trial far behind from the first epoch
    pruned = []
    for epoch in range(6):
        trial.report(0.1, step=epoch)
        pruned.append(trial.should_prune())
    assert pruned[:3] == [False, False, False]
    if name == "median":
        assert pruned[3]  # the fourth epoch is the first that can prune


@pytest.mark.parametrize(
    ("space", "args", "message"),
    [
        ({"model.encoder.hiden_size": {"type": "int", "low": 8, "high": 16}}, [],
         "tune.py: error: space.yaml: Parser key \"model.encoder\": Unexpected keys: {'hiden_size'}"),
        ({"model.encoder.dropout": {"type": "float", "low": 0.5, "high": 0.1}}, [],
         "tune.py: error: space.yaml: model.encoder.dropout: expected low <= high, found low=0.5 high=0.1"),
        (SPACE, ["--storage", "sqlite:////nonexistent/folder/x.db"],
         "tune.py: error: cannot open the storage sqlite:////nonexistent/folder/x.db: "),
    ],
    ids=["unknown-key", "low-above-high", "storage"],
)
def test_bad_input_is_one_line(tmp_path, space, args, message):
    write_space(tmp_path, space)
    process = tune_py(tmp_path, "--trials", "1", *args)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(message), err[-2000:]
    assert "Traceback" not in err
