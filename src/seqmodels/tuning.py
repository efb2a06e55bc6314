"""Hyperparameter search with Optuna, through the same CLI as ``train.py``: ``python tune.py``.

``python tune.py --config configs/X.yaml --search configs/search/X.yaml [train.py options] --trials 30``

Each trial is an ordinary ``train.py fit`` run, with the search space's keys set to the values the
sampler (seeded TPE) proposes, logged under ``logs/tune/<name>/version_<trial>`` (TensorBoard's HPARAMS
tab compares them). Its objective is the best value of the config's monitored **validation** metric
(``checkpoint.monitor``); test files are dropped, so no trial reads a test split. A pruner (median or
Hyperband) stops a trial whose per-epoch validation metric falls behind. The study lives in an Optuna
storage (SQLite ``logs/tune/<name>.db`` by default, any RDB URL with ``--storage``), so several
processes or machines can work on one study, and a killed search continues when rerun: its running
trial is found stale by its heartbeat, recorded as failed, and retried. ``--budget-minutes`` ends the
search after the trial running at that time. The best trial's values are written as
``logs/tune/<name>/best.yaml``, a config to give ``train.py`` after the task's own.

A search space is a YAML file mapping ``train.py`` config keys to distributions::

    model.optimizer.init_args.lr: {type: float, low: 0.0003, high: 0.003, log: true}
    model.encoder.hidden_size: {type: int, low: 64, high: 256, step: 32}
    model.encoder.word_dropout: {type: categorical, choices: [0.0, 0.05, 0.1]}
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import Trial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from seqmodels.cli import SeqModelsCLI, main, resolved_config

TYPES = ("float", "int", "categorical")
WARMUP_EPOCHS = 3  # the default warm-up of the pruners below
# Each builds a pruner that lets a trial run ``warmup`` epochs before it can be pruned: the first epochs rank
# trials poorly (a lower learning rate starts slower; the weight average covers a few epochs).
PRUNERS = {
    "median": lambda warmup: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup),
    "hyperband": lambda warmup: optuna.pruners.HyperbandPruner(min_resource=max(warmup, 1)),
    "none": lambda warmup: optuna.pruners.NopPruner(),
}


class TuneError(ValueError):
    """A search space, storage or trial that cannot work; the message is one line."""


class TrialCLI(SeqModelsCLI):
    """``train.py fit`` for one trial: no test file is read, and no test split is evaluated."""

    test_after_fit = False

    def before_instantiate_classes(self) -> None:
        data = self.config[self.subcommand].data
        data.test_file = None
        for corpus in (data.corpora or {}).values():
            corpus.test_file = None
        super().before_instantiate_classes()


def load_space(path: Path) -> dict[str, dict[str, Any]]:
    """The search space, checked: every key a distribution of a known type, low <= high."""
    try:
        space = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TuneError(f"cannot read the search space {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(space, dict) or not space:
        raise TuneError(f"{path}: expected config keys mapped to distributions, found {space!r}")
    for key, spec in space.items():
        where = f"{path}: {key}"
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise TuneError(f"{where}: expected {{type: float|int|categorical, ...}}, found {spec!r}")
        if spec["type"] == "categorical":
            if not spec.get("choices"):
                raise TuneError(f"{where}: a categorical distribution needs a list of choices")
        elif "low" not in spec or "high" not in spec or spec["low"] > spec["high"]:
            raise TuneError(f"{where}: expected low <= high, found low={spec.get('low')} high={spec.get('high')}")
    return space


def sample(trial: Trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trial's value for each key of the search space."""
    values = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1),
                                            log=spec.get("log", False))  # fmt: skip
        else:
            values[key] = trial.suggest_float(key, spec["low"], spec["high"], step=spec.get("step"),
                                              log=spec.get("log", False))  # fmt: skip
    return values


def overrides(values: dict[str, Any]) -> list[str]:
    """``--key=value`` arguments for ``train.py``, each value as YAML (lists, null and booleans included)."""
    return [f"--{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in values.items()]  # fmt: skip


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"model.encoder.hidden_size": 128}`` -> ``{"model": {"encoder": {"hidden_size": 128}}}``: a config file."""
    config: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return config


def check_keys(train_args: list[str], space: dict[str, dict[str, Any]], path: Path, config_dir: Path) -> None:
    """Parse the training command with each key at its first value, as train.py would: an unknown key or a value
    of the wrong type fails here, in one line naming the search space, before any trial runs."""
    first = {key: spec["choices"][0] if spec["type"] == "categorical" else spec["low"] for key, spec in space.items()}
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr), contextlib.suppress(SystemExit):
        main(["fit", *train_args, *overrides(first), "--print_config"], config_dir)
    complaint = stderr.getvalue().strip().splitlines()
    if any("error:" in line for line in complaint):
        message = next(line for line in complaint if "error:" in line).split("error: ", 1)[1]
        raise TuneError(f"{path}: {message}")


class Objective:
    """One trial: ``train.py fit`` with the sampled values; its value is the best monitored validation metric."""

    def __init__(
        self, train_args: list[str], space: dict[str, dict[str, Any]], name: str, monitor: str, config_dir: Path
    ) -> None:
        self.train_args, self.space, self.name, self.monitor = train_args, space, name, monitor
        self.config_dir = config_dir

    def __call__(self, trial: Trial) -> float:
        logs = ["--trainer.logger.init_args.save_dir=logs/tune", f"--trainer.logger.init_args.name={self.name}",
                f"--trainer.logger.init_args.version=version_{trial.number}",
                "--trainer.enable_progress_bar=false"]  # fmt: skip
        args = ["fit", *self.train_args, *overrides(sample(trial, self.space)), *logs]
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.monitor)
        try:
            cli = main(args, self.config_dir, cli_class=TrialCLI, callbacks=[pruning])
        except SystemExit as error:  # train.py's one-line error is on stderr already
            raise TuneError(f"trial {trial.number} failed (exit status {error.code}); see the error above") from None
        score = cli.trainer.checkpoint_callback.best_model_score
        if score is None:
            raise TuneError(f"trial {trial.number} logged no {self.monitor}")
        return float(score)


def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A line per trial: its number, values, result (or the epoch it was pruned at), and the best so far."""
    params = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in trial.params.items())  # fmt: skip
    if trial.state == TrialState.PRUNED:
        result = f"pruned after epoch {max(trial.intermediate_values, default=0)}"
    else:
        state = trial.state.name.lower()
        result = f"{state} {trial.value:.4f}" if trial.value is not None else state
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = f"best {study.best_value:.4f} (trial {study.best_trial.number})" if done else "best: none yet"
    print(f"trial {trial.number}: {params} -> {result}; {best}", flush=True)


def monitored(train_args: list[str], config_dir: Path) -> tuple[str, str]:
    """The config's checkpoint.monitor and its direction, from the resolved config train.py would run."""
    config = resolved_config(train_args, config_dir)
    return config["checkpoint"]["monitor"], "maximize" if config["checkpoint"]["mode"] == "max" else "minimize"


def best_config(train_args: list[str], params: dict[str, Any], config_dir: Path) -> dict[str, Any]:
    """The best trial's values as a config to give after the task's own. A searched key inside a dict section
    (``model.encoder``, a head) brings the whole section as the trial resolved it: a later config replaces a
    dict whole, so a file with only ``model.encoder.dropout`` would drop the encoder's other settings (its
    layers, its character CNN). Classes (``class_path``: the optimizer) and plain keys merge key by key."""
    config = resolved_config([*train_args, *overrides(params)], config_dir)
    values = {}
    for key, value in params.items():
        section_key = ".".join(key.split(".")[:2])
        section = config
        for part in section_key.split("."):
            section = section[part]
        whole = isinstance(section, dict) and "class_path" not in section and section_key != key
        values.update({section_key: section} if whole else {key: value})
    return nested(values)


def tune(
    train_args: list[str], search: Path, trials: int, name: str | None = None, storage: str | None = None,
    budget_minutes: float | None = None, seed: int = 0, pruner: optuna.pruners.BasePruner | None = None,
    heartbeat: int = 60, config_dir: Path = Path("configs"),
) -> optuna.Study:  # fmt: skip
    """Run (or continue) the study ``name`` until it has ``trials`` finished trials; see the module docstring."""
    space = load_space(search)
    check_keys(train_args, space, search, config_dir)
    configs = [train_args[i + 1] for i, arg in enumerate(train_args[:-1]) if arg == "--config"]
    name = name or (Path(configs[0]).stem if configs else "default")
    Path("logs/tune", name).mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///logs/tune/{name}.db"
    try:
        with warnings.catch_warnings():  # the heartbeat is experimental in Optuna; it is how a search resumes
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
            backend = RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                 heartbeat_stale_trial_callback=retry)  # fmt: skip
    except Exception as error:  # SQLAlchemy's many errors: an unreachable server, a bad URL, a missing driver
        raise TuneError(f"cannot open the storage {url}: {str(error).strip().splitlines()[0]}") from None
    monitor, direction = monitored(train_args, config_dir)
    study = optuna.create_study(
        study_name=name, storage=backend, direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner or PRUNERS["median"](WARMUP_EPOCHS),
    )  # fmt: skip
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = trials - len(study.get_trials(states=finished))
    print(f"study {name} ({url}): {len(study.trials)} trials so far, {max(remaining, 0)} to run; "
          f"{direction} {monitor} on the validation split", flush=True)  # fmt: skip
    if remaining > 0:
        study.optimize(
            Objective(train_args, space, name, monitor, config_dir), n_trials=remaining,
            timeout=budget_minutes * 60 if budget_minutes else None,
            callbacks=[report, optuna.study.MaxTrialsCallback(trials, states=finished)],
        )  # fmt: skip
    if any(t.state == TrialState.COMPLETE for t in study.trials):
        best = Path("logs/tune", name, "best.yaml")
        config = best_config(train_args, study.best_params, config_dir)
        best.write_text(f"# study {name}: trial {study.best_trial.number}, {monitor} = {study.best_value:.4f}\n"
                        + yaml.safe_dump(config, sort_keys=False))  # fmt: skip
        print(f"best: trial {study.best_trial.number}, {monitor} {study.best_value:.4f}; "
              f"python train.py fit {' '.join(train_args)} --config {best}")  # fmt: skip
    return study


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """tune.py's own options; everything else goes to ``train.py fit``."""
    parser = argparse.ArgumentParser(prog="tune.py", description="Hyperparameter search with Optuna (see README).",
                                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("--search", type=Path, required=True, help="the search space (configs/search/*.yaml)")
    parser.add_argument("--trials", type=int, default=30, help="finished trials the study should have")
    parser.add_argument("--name", help="the study's name (default: the first --config's)")
    parser.add_argument("--storage", help="an Optuna RDB URL (default: sqlite:///logs/tune/<name>.db)")
    parser.add_argument("--budget-minutes", type=float, help="stop after the trial running at this time")
    parser.add_argument("--sampler-seed", type=int, default=0, help="the TPE sampler's seed")
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument("--warmup-epochs", type=int, default=WARMUP_EPOCHS,
                        help="epochs a trial runs before it can be pruned")
    parser.add_argument("--heartbeat", type=int, default=60, help="seconds; a trial silent for twice this is stale")
    return parser.parse_known_args(argv)


def run(argv: list[str] | None = None, config_dir: Path = Path("configs")) -> None:
    """The ``tune.py`` command (``config_dir``: where ``base.yaml`` is); a bad search space, storage or trial
    ends it with one line."""
    options, train_args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        tune(train_args, options.search, options.trials, options.name, options.storage, options.budget_minutes,
             options.sampler_seed, PRUNERS[options.pruner](options.warmup_epochs), options.heartbeat, config_dir)  # fmt: skip
    except TuneError as error:
        raise SystemExit(f"tune.py: error: {error}") from None
    print(f"tune.py: {time.perf_counter() - start:.0f} s")
