"""The Optuna study behind ``tune.py`` (:mod:`seqmodels.tuning`): one that several processes or machines share
through an RDB storage, and that a killed run leaves in a state the next run continues at once.

- A trial records the host and pid of its process (user attributes ``host`` and ``pid``). A running trial whose
  process is gone from this host is failed and retried when the study is opened; one of another host waits for
  its heartbeat to stop (``heartbeat`` seconds, stale after twice that), as Optuna's heartbeat does any trial,
  since this host cannot see that host's processes and must not take over its live trials. Both are retried
  once by Optuna's retry callback.
- A trial that fails with a :class:`TuneError` (train.py's one-line error) is that one line: Optuna's warnings about
  it, its traceback among them, are dropped (:func:`one_line_failures`).
- The sampler (TPE) is seeded with the study's seed plus its number of trials: a rerun never replays an earlier
  run's proposals, and a study run through at once is the same for the same seed. Processes started on one
  study at the same moment see the same number of trials: give them different seeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import warnings
from collections.abc import Iterator

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from seqmodels.search_space import TuneError

WORKER = ("host", "pid")  # the user attributes naming the process that runs a trial


class Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (once), less the dead worker's host and pid: until the retry records its
    own, it must not look like a trial of a dead process."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial.user_attrs = {key: value for key, value in trial.user_attrs.items() if key not in WORKER}
        super().__call__(study, trial)


class QuietFailures(logging.Filter):
    """Drops Optuna's two warnings about a trial that failed with a TuneError (the first with its traceback).
    Other failures keep them."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        trial = re.match(r"Trial (\d+) failed with ", record.getMessage())
        if trial and record.exc_info and isinstance(record.exc_info[1], TuneError):
            self.trials.add(trial[1])
        return not (trial and trial[1] in self.trials)


@contextlib.contextmanager
def one_line_failures() -> Iterator[None]:
    """Within: a trial that fails with a TuneError is logged by no one but its TuneError's one line, which ends
    the search (``study.optimize`` raises it)."""
    quiet, log = QuietFailures(), logging.getLogger("optuna.study._optimize")  # where Optuna logs failed trials
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study, storage: RDBStorage) -> None:
    """Fail and retry, as Optuna does a trial whose heartbeat stopped, each running trial of this host whose
    process is gone. Another host's trials wait for their heartbeat: this host cannot see their processes."""
    host, retry = socket.gethostname(), storage.get_heartbeat_stale_trial_callback()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int) or alive(pid):
            continue
        try:  # Optuna has no public trial id; its own fail_stale_trials uses the storage's
            failed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
            continue
        if failed:
            print(f"trial {trial.number}: its process ({host}, pid {pid}) is gone; failed, and retried", flush=True)
            retry(study, storage.get_trial(trial._trial_id))


def record_worker(trial: Trial) -> None:
    """Record the trial's host and process, by which a later run tells whether it still runs."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def open_study(
    name: str, url: str, direction: str, seed: int, pruner: optuna.pruners.BasePruner, heartbeat: int
) -> optuna.Study:
    """The study ``name`` in the storage ``url``, created or loaded, with this host's trials of dead processes
    failed and retried, and a sampler seeded with ``seed`` plus the study's number of trials."""
    try:
        with warnings.catch_warnings():  # the heartbeat is experimental in Optuna; it is how a search resumes
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                 heartbeat_stale_trial_callback=Retry(max_retry=1))  # fmt: skip
    except Exception as error:  # SQLAlchemy's many errors: an unreachable server, a bad URL, a missing driver
        raise TuneError(f"cannot open the storage {url}: {str(error).strip().splitlines()[0]}") from None
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True,
                                pruner=pruner)  # fmt: skip
    fail_dead_trials(study, storage)
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study
