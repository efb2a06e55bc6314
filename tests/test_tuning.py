"""tune.py: a killed search continues at once without losing or repeating a trial, values already trained are
not trained again, pruning is recorded, best.yaml is a config train.py takes, and bad input (a search space,
an option) is one line before any study exists."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import CONFIGS, ROOT, child_env
from optuna.storages import RDBStorage

from seqmodels.cli import resolved_config
from seqmodels.study import Retry, fail_dead_trials
from seqmodels.tuning import MAX_REPEATS, PRUNERS, SAME_AS, run, trained, tune

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


def trials_of(folder: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'logs' / 'tune' / 'tiny.db'}").trials


def distinct(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Whether no two of ``trials`` have the same values."""
    return len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)


@pytest.mark.slow
def test_a_killed_search_rerun_at_once_loses_or_repeats_no_trial(tmp_path, monkeypatch):
    """With the default heartbeat (60 s, stale after 120 s): the killed trial is failed and retried at once."""
    write_space(tmp_path, SPACE)
    first = tune_py(tmp_path, "--trials", "3")
    started = tmp_path / "logs" / "tune" / "tiny" / "version_1"
    deadline = time.monotonic() + 240
    while not started.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # in trial 1, after trial 0 finished
    assert first.wait(timeout=30) == -signal.SIGKILL
    before = trials_of(tmp_path)
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]

    second = tune_py(tmp_path, "--trials", "3")  # at once: trial 1's heartbeat is not stale yet
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    assert "LightningCLI's args parameter" not in err  # tune.py's own arguments are not the trials'
    after = trials_of(tmp_path)
    finished = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert "RUNNING" not in [t.state.name for t in after] and after[1].state.name == "FAIL"  # the killed one
    assert len(finished) == 3 and distinct(finished)  # no values trained twice, trial 0's included
    assert after[0].value == before[0].value and after[0].params == before[0].params  # kept, not rerun
    retry = next(t for t in after if t.system_attrs.get("failed_trial") == 1)
    assert retry.params == after[1].params and retry in finished  # retried once
    assert f"trial 1: its process ({socket.gethostname()}, pid {first.pid}) is gone; failed, and retried" in out
    ran = [int(line.split()[1].rstrip(":")) for line in out.splitlines() if line.startswith("trial ") and "->" in line]
    assert ran == [t.number for t in after[2:]] and 0 not in ran  # only new trials ran: trial 0 was kept
    assert (tmp_path / "logs" / "tune" / "tiny" / "best.yaml").is_file()

    monkeypatch.chdir(tmp_path)  # a later run asking for more proposes none of the earlier values either
    study = tune(TINY, Path("space.yaml"), trials=5, name="tiny", config_dir=CONFIGS)
    assert len(trained(study)) == 5 and distinct(trained(study))


def test_only_this_hosts_trials_of_dead_processes_are_failed_and_retried(tmp_path):
    """Another host's trial, this host's live one, and one without a worker recorded wait for their heartbeat."""
    storage = RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=60, grace_period=120,
                         heartbeat_stale_trial_callback=Retry(max_retry=1))  # fmt: skip
    study = optuna.create_study(storage=storage)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has
    here = socket.gethostname()
    for worker in [(here, gone.pid), (here, os.getpid()), ("elsewhere", gone.pid), None]:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        for key, value in zip(("host", "pid"), worker or ()):
            trial.set_user_attr(key, value)
    fail_dead_trials(study, storage)
    *trials, retry = study.trials
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "RUNNING", "RUNNING"]
    assert retry.state.name == "WAITING" and retry.params == trials[0].params
    assert "pid" not in retry.user_attrs  # until it runs, the retry is no trial of the dead process


def test_a_proposal_of_values_already_trained_is_not_trained_again(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, {"model.classifier.dropout": {"type": "categorical", "choices": [0.1]}})
    tune(TINY, space, trials=1, config_dir=CONFIGS)
    study = tune(TINY, space, trials=2, config_dir=CONFIGS)  # the space's one point is trained already
    first, *repeats = study.trials
    assert [path.name for path in (tmp_path / "logs" / "tune" / "classifier").glob("version_*")] == ["version_0"]
    assert len(repeats) == MAX_REPEATS and trained(study) == [first]  # not counted towards --trials
    assert all(t.user_attrs[SAME_AS] == 0 and t.value == first.value for t in repeats)
    out = capsys.readouterr().out
    assert "-> complete as trial 0, whose values these are (not trained again)" in out
    assert f"stopped: the last {MAX_REPEATS} proposals were all tried already" in out


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


def lr(**fields) -> dict:
    return {"model.optimizer.init_args.lr": {"type": "float", "low": 0.001, "high": 0.01} | fields}


LR = "space.yaml: model.optimizer.init_args.lr"


@pytest.mark.parametrize(
    ("space", "args", "message"),
    [
        (lr(lgo=True), [], f"{LR}: unknown field 'lgo' for a float distribution; did you mean log?"),
        (lr(low=0, log=True), [], f"{LR}: `low > 0` must hold for `log=True`, but got (low=0, high=0.01)."),
        (lr(step=0.001, log=True), [], f"{LR}: The parameter `step` is not supported when `log` is true."),
        (lr(low=0.5), [], f"{LR}: `low <= high` must hold, but got (low=0.5, high=0.01)."),
        (lr(type="flaot"), [], f"{LR}: expected {{type: float|int|categorical, ...}}, found 'flaot'; did you "
         "mean float?"),
        (SPACE, ["--storage", "sqlite:////nonexistent/folder/x.db"],
         "cannot open the storage sqlite:////nonexistent/folder/x.db: "),
        ({"model.encoder.hidden_size": {"type": "categorical", "choices": [16, "abc"]}}, [],
         "space.yaml: model.encoder.hidden_size = 'abc': Parser key \"model.encoder\": Expected a <class 'int'>"),
        ({"model.encoder.hidden_size": {"type": "int", "low": 16.5, "high": 64}}, [],
         "space.yaml: model.encoder.hidden_size: an int distribution's low must be a whole number, found 16.5"),
    ],
    ids=["misspelt-field", "log-from-0", "log-with-step", "low-above-high", "misspelt-type", "storage",
         "wrong-type-of-a-later-choice", "fractional-int-bound"],
)
def test_a_bad_search_space_or_storage_is_one_line_before_the_study_is_created(
    tmp_path, monkeypatch, capsys, space, args, message
):
    monkeypatch.chdir(tmp_path)
    write_space(tmp_path, space)
    with pytest.raises(SystemExit) as exit:
        run([*TINY, "--search", "space.yaml", "--name", "tiny", "--trials", "1", *args], CONFIGS)
    assert exit.value.code.startswith(f"tune.py: error: {message}") and "\n" not in exit.value.code
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "logs" / "tune" / "tiny.db").exists()


@pytest.mark.parametrize(
    ("space", "args", "message"),
    [
        ({"model.encoder.hiden_size": {"type": "int", "low": 8, "high": 16}}, [],
         "tune.py: error: space.yaml: model.encoder.hiden_size: Parser key \"model.encoder\": Unexpected keys: "
         "{'hiden_size'}; did you mean model.encoder.hidden_size?"),
        (SPACE, ["--trial", "2"], "tune.py: error: unrecognized arguments: --trial 2; did you mean --trials?"),
    ],
    ids=["unknown-key", "tune-option"],
)
def test_a_mistaken_key_or_option_is_one_line_naming_tune_py(tmp_path, space, args, message):
    write_space(tmp_path, space)
    process = tune_py(tmp_path, "--trials", "1", *args)
    out, err = process.communicate(timeout=300)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0] == message, err[-2000:]
    assert "Traceback" not in err and "tune.py fit" not in err  # no such command
    if "unrecognized" in message:  # tune.py's own mistake: its usage, not train.py's
        assert process.returncode == 2 and err.startswith("usage: tune.py [-h] --search SEARCH")
    else:
        assert process.returncode == 1
    assert not (tmp_path / "logs" / "tune" / "tiny.db").exists()  # checked before the study is created


def test_a_command_without_the_tasks_config_is_one_line_before_the_study_is_created(tmp_path, monkeypatch):
    """base.yaml alone has no head: the model cannot be built, which train.py finds only in a trial."""
    monkeypatch.chdir(tmp_path)
    write_space(tmp_path, SPACE)
    with pytest.raises(SystemExit) as exit:
        run(["--search", "space.yaml", "--trials", "1"], CONFIGS)
    assert exit.value.code == ("tune.py: error: the model needs at least one head: set model.heads (or model.tagger, "
                               "model.classifier); no --config was given: give the task's (configs/NAME.yaml)")
    assert not (tmp_path / "logs" / "tune" / "default.db").exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [("--trials", "0", "a whole number above 0"), ("--trials", "-1", "a whole number above 0"),
     ("--budget-minutes", "-1", "a number above 0"), ("--budget-minutes", "nan", "a number above 0"),
     ("--heartbeat", "0", "a whole number above 0"), ("--warmup-epochs", "-2", "a whole number, 0 or more")],
)  # fmt: skip
def test_a_number_out_of_range_is_tune_pys_usage_error(tmp_path, monkeypatch, capsys, option, value, expected):
    """--trials/--budget-minutes/--heartbeat above 0 and --warmup-epochs not below: no run of nothing, no
    traceback from the pruner, no error blamed on the storage."""
    monkeypatch.chdir(tmp_path)
    write_space(tmp_path, SPACE)
    with pytest.raises(SystemExit) as exit:
        run([*TINY, "--search", "space.yaml", option, value], CONFIGS)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.startswith("usage: tune.py [-h] --search SEARCH")
    assert err.splitlines()[-1] == f"tune.py: error: argument {option}: expected {expected}, found {value!r}"
    assert not (tmp_path / "logs").exists()


def test_a_failing_trial_is_one_line_with_its_values_and_trainpys_error(tmp_path):
    """A trial train.py refuses (a dropout above 1: no parser checks a range) ends the search with one line: no
    traceback from Optuna, no second copy of train.py's error."""
    write_space(tmp_path, {"model.classifier.dropout": {"type": "categorical", "choices": [1.5]}})
    process = tune_py(tmp_path, "--trials", "1")
    _, err = process.communicate(timeout=300)
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    expected = ("tune.py: error: trial 0 (model.classifier.dropout=1.5) failed: the classifier head: dropout "
                "probability has to be between 0 and 1, but got 1.5 (--debug for the traceback)")  # fmt: skip
    assert errors == [expected], err[-3000:]
    assert process.returncode == 1 and "Traceback" not in err
    assert [t.state.name for t in trials_of(tmp_path)] == ["FAIL"]
