"""Hyperparameter search with Optuna, through the same CLI as ``train.py``: ``python tune.py``.

``python tune.py --config configs/X.yaml --search configs/search/X.yaml [train.py options] --trials 30``

Each trial is an ordinary ``train.py fit`` run, with the search space's keys set to the values the
sampler proposes, logged under ``logs/tune/<name>/version_<trial>`` (TensorBoard's HPARAMS
tab compares them). Its objective is the best value of the config's monitored **validation** metric
(``checkpoint.monitor``); test files are dropped, so no trial reads a test split. A pruner (median or
Hyperband) stops a trial whose per-epoch validation metric falls behind. The study lives in an Optuna
storage (SQLite ``logs/tune/<name>.db`` by default, any RDB URL with ``--storage``), so several
processes or machines can work on one study, and a search continues when rerun:

- A killed run's trial is recorded as failed and retried: at once when it ran on this host and its process is
  gone, else when its heartbeat stops; the sampler's seed moves on with the study's number of trials, so that
  no run replays an earlier one's proposals (:mod:`seqmodels.study`).
- A proposal equal to a finished trial's values is not trained again: it is recorded with that trial's result
  (its value, or pruned) and the user attribute ``same_as`` (that trial's number), as Optuna's FAQ does for
  repeated samples, and does not count towards ``--trials``. The search stops early, saying so, after
  ``MAX_REPEATS`` such proposals in a row: the sampler finds nothing new in a small discrete space.

``--budget-minutes`` ends the search after the trial running at that time. The best trial's values are written
as ``logs/tune/<name>/best.yaml``, a config to give ``train.py`` after the task's own. A trial that fails ends
the search in one line: its values and train.py's own error. Search spaces: :mod:`seqmodels.search_space`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

import optuna
import yaml
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, Trial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from seqmodels.arguments import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT
from seqmodels.cli import HEAD_KEYS, SeqModelsCLI, main
from seqmodels.models.heads import head_configs
from seqmodels.search_space import (
    TuneError, UsageError, best_config, check_keys, load_space, overrides, printed_config, sample, suggestion,
    train_error,
)  # fmt: skip
from seqmodels.study import one_line_failures, open_study, record_worker

WARMUP_EPOCHS = 3  # the default warm-up of the pruners below
# Each builds a pruner that lets a trial run ``warmup`` epochs before it can be pruned: the first epochs rank
# trials poorly (a lower learning rate starts slower; the weight average covers a few epochs).
PRUNERS = {
    "median": lambda warmup: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup),
    "hyperband": lambda warmup: optuna.pruners.HyperbandPruner(min_resource=max(warmup, 1)),
    "none": lambda warmup: optuna.pruners.NopPruner(),
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SAME_AS = "same_as"  # the user attribute of a repeated proposal: the number of the trial it repeats
MAX_REPEATS = 10  # repeated proposals in a row that end a search


class TrialCLI(SeqModelsCLI):
    """``train.py fit`` for one trial: no test file is read, and no test split is evaluated."""

    test_after_fit = False

    def before_instantiate_classes(self) -> None:
        data = self.config[self.subcommand].data
        data.test_file = None
        for corpus in (data.corpora or {}).values():
            corpus.test_file = None
        super().before_instantiate_classes()


class TrialStderr:
    """A trial's stderr: everything goes through except train.py's one-line error, which it keeps (``error``) for
    tune.py's own line about the trial, so that the error is printed once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.error = stream, ""

    def write(self, text: str) -> int:
        if re.fullmatch(r"[\w.-]+(?: fit)?: error: .*\n", text):  # a whole write, as train.py writes its error
            self.error = train_error(text)
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, ...: the stream's
        return getattr(self.stream, name)


def trained(study: optuna.Study) -> list[FrozenTrial]:
    """The study's finished trials that were trained (not repeated proposals): what ``--trials`` counts."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if SAME_AS not in t.user_attrs]


class Objective:
    """One trial: ``train.py fit`` with the sampled values; its value is the best monitored validation metric."""

    def __init__(
        self, train_args: list[str], space: dict[str, BaseDistribution], name: str, monitor: str, config_dir: Path
    ) -> None:
        self.train_args, self.space, self.name, self.monitor = train_args, space, name, monitor
        self.config_dir = config_dir

    def __call__(self, trial: Trial) -> float:
        record_worker(trial)
        values = sample(trial, self.space)
        earlier = next((t for t in trained(trial.study) if t.params == trial.params), None)
        if earlier is not None:  # not trained again: the earlier trial's result
            trial.set_user_attr(SAME_AS, earlier.number)
            if earlier.state == TrialState.PRUNED:
                raise optuna.TrialPruned(f"the values of trial {earlier.number}, which was pruned")
            return earlier.value
        logs = ["--trainer.logger.init_args.save_dir=logs/tune", f"--trainer.logger.init_args.name={self.name}",
                f"--trainer.logger.init_args.version=version_{trial.number}",
                "--trainer.enable_progress_bar=false"]  # fmt: skip
        pruning, stderr = PyTorchLightningPruningCallback(trial, monitor=self.monitor), TrialStderr(sys.stderr)
        try:
            with contextlib.redirect_stderr(stderr):
                cli = main(["fit", *self.train_args, *overrides(values), *logs], self.config_dir, cli_class=TrialCLI,
                           callbacks=[pruning])  # fmt: skip
        except SystemExit as error:
            why = stderr.error or f"exit status {error.code}"
            raise TuneError(f"trial {trial.number} ({shown(trial.params)}) failed: {why}") from None
        score = cli.trainer.checkpoint_callback.best_model_score
        if score is None:
            raise TuneError(f"trial {trial.number} logged no {self.monitor}")
        return float(score)


class Enough:
    """Stops the search once the study has ``trials`` trained trials, or after ``MAX_REPEATS`` repeated proposals
    in a row (see the module's docstring)."""

    def __init__(self, trials: int) -> None:
        self.trials, self.repeats = trials, 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.repeats = self.repeats + 1 if SAME_AS in trial.user_attrs else 0
        if len(trained(study)) >= self.trials:
            study.stop()
        elif self.repeats >= MAX_REPEATS:
            print(f"stopped: the last {MAX_REPEATS} proposals were all tried already (is the search space "
                  f"exhausted?); {len(trained(study))} of {self.trials} trials trained", flush=True)  # fmt: skip
            study.stop()


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best trained trial: a repeated proposal ties with the trial it repeats, and is not that trial."""
    done = [t for t in trained(study) if t.state == TrialState.COMPLETE]
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(done, key=lambda t: t.value, default=None)


def shown(params: dict[str, Any]) -> str:
    """A trial's values as ``key=value, ...``."""
    return ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in params.items())  # fmt: skip


def report(study: optuna.Study, trial: FrozenTrial) -> None:
    """A line per trial: its number, values, result (or the epoch it was pruned at), and the best so far."""
    params = shown(trial.params)
    state = trial.state.name.lower()
    if SAME_AS in trial.user_attrs:
        result = f"{state} as trial {trial.user_attrs[SAME_AS]}, whose values these are (not trained again)"
    elif trial.state == TrialState.PRUNED:
        result = f"pruned after epoch {max(trial.intermediate_values, default=0)}"
    else:
        result = f"{state} {trial.value:.4f}" if trial.value is not None else state
    best = best_trial(study)
    print(f"trial {trial.number}: {params} -> {result}; "
          + (f"best {best.value:.4f} (trial {best.number})" if best else "best: none yet"), flush=True)  # fmt: skip


def tune(
    train_args: list[str], search: Path, trials: int, name: str | None = None, storage: str | None = None,
    budget_minutes: float | None = None, seed: int = 0, pruner: optuna.pruners.BasePruner | None = None,
    heartbeat: int = 60, config_dir: Path = Path("configs"),
) -> optuna.Study:  # fmt: skip
    """Run (or continue) the study ``name`` until it has ``trials`` trained trials; see the module docstring.
    The training options and the search space are checked before the study is opened."""
    config, error = printed_config(train_args, config_dir)
    if config is None:
        raise (UsageError if error.startswith("unrecognized arguments") else TuneError)(error)
    space = load_space(search)
    check_keys(train_args, space, search, config, config_dir)
    check_heads(train_args, config)
    monitor = config["checkpoint"]["monitor"]
    direction = "maximize" if config["checkpoint"]["mode"] == "max" else "minimize"
    configs = [train_args[i + 1] for i, arg in enumerate(train_args[:-1]) if arg == "--config"]
    name = name or (Path(configs[0]).stem if configs else "default")
    Path("logs/tune", name).mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///logs/tune/{name}.db"
    study = open_study(name, url, direction, seed, pruner or PRUNERS["median"](WARMUP_EPOCHS), heartbeat)
    remaining = trials - len(trained(study))
    print(f"study {name} ({url}): {len(study.trials)} trials so far, {max(remaining, 0)} to run; "
          f"{direction} {monitor} on the validation split", flush=True)  # fmt: skip
    if remaining > 0:
        with one_line_failures():
            study.optimize(Objective(train_args, space, name, monitor, config_dir), callbacks=[report, Enough(trials)],
                           timeout=budget_minutes * 60 if budget_minutes else None)  # fmt: skip
    best = best_trial(study)
    if best is not None:
        path = Path("logs/tune", name, "best.yaml")
        config = best_config(train_args, best.params, config_dir)
        path.write_text(f"# study {name}: trial {best.number}, {monitor} = {best.value:.4f}\n"
                        + yaml.safe_dump(config, sort_keys=False))  # fmt: skip
        print(f"best: trial {best.number}, {monitor} {best.value:.4f}; "
              f"python train.py fit {' '.join(train_args)} --config {path}")  # fmt: skip
    return study


def check_heads(train_args: list[str], config: dict[str, Any]) -> None:
    """The model's heads in ``config`` checked as train.py checks them when it builds the model, which it does only
    in a trial: without the task's ``--config``, base.yaml's model has none."""
    model = config["model"]
    try:
        head_configs(heads=model.get("heads"), **{key: model.get(key) for key in HEAD_KEYS if key != "heads"})
    except ValueError as error:
        given = any(arg.split("=")[0] == "--config" for arg in train_args)
        hint = "" if given else "; no --config was given: give the task's (configs/NAME.yaml)"
        raise TuneError(f"{error}{hint}") from None


def arg_parser() -> argparse.ArgumentParser:
    """tune.py's own options; everything else goes to ``train.py fit``."""
    parser = argparse.ArgumentParser(prog="tune.py", description="Hyperparameter search with Optuna (see README).",
                                     allow_abbrev=False)  # fmt: skip
    parser.add_argument("--search", type=Path, required=True, help="the search space (configs/search/*.yaml)")
    parser.add_argument("--trials", type=POSITIVE_INT, default=30,
                        help="trained trials the study should have (a repeated proposal does not count)")
    parser.add_argument("--name", help="the study's name (default: the first --config's)")
    parser.add_argument("--storage", help="an Optuna RDB URL (default: sqlite:///logs/tune/<name>.db)")
    parser.add_argument("--budget-minutes", type=POSITIVE, help="stop after the trial running at this time")
    parser.add_argument("--sampler-seed", type=int, default=0,
                        help="the TPE sampler's seed, to which each run adds the study's number of trials")
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument("--warmup-epochs", type=NON_NEGATIVE_INT,
                        default=WARMUP_EPOCHS, help="epochs a trial runs before it can be pruned")
    parser.add_argument("--heartbeat", type=POSITIVE_INT, default=60,
                        help="seconds; another host's trial silent for twice this is stale")
    return parser


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """train.py's ``message`` about an option neither tune.py nor train.py takes: with tune.py's usage, and the
    closest of its options when one is close (``--trial``: ``--trials``); in one line when train.py has a close
    one (``--data.batch_sise``: ``--data.batch_size``)."""
    option = message.removeprefix("unrecognized arguments: ").split()[0].split("=")[0]
    hint = suggestion(option, list(parser._option_string_actions))
    if hint or "; did you mean" not in message:
        parser.error(message.split("; did you mean")[0] + hint)
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def run(argv: list[str] | None = None, config_dir: Path = Path("configs")) -> None:
    """The ``tune.py`` command (``config_dir``: where ``base.yaml`` is): tune.py's options are parsed first, and
    the rest is train.py's. A mistaken option ends it with tune.py's usage; a bad search space, storage or trial
    with one line."""
    parser = arg_parser()
    options, train_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        tune(train_args, options.search, options.trials, options.name, options.storage, options.budget_minutes,
             options.sampler_seed, PRUNERS[options.pruner](options.warmup_epochs), options.heartbeat, config_dir)  # fmt: skip
    except UsageError as error:
        usage_error(parser, str(error))
    except TuneError as error:
        raise SystemExit(f"tune.py: error: {error}") from None
    print(f"tune.py: {time.perf_counter() - start:.0f} s")
