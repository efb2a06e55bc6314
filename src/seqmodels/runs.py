"""What the CLI's runs get beyond Lightning's defaults: settings checked before a run starts (a fit that could never
validate is refused), a full run's end however short the run, and quiet output.

Lightning validates at the end of each epoch (or every ``trainer.val_check_interval``), so a run that
``trainer.max_steps`` stops inside an epoch would end between two validations: no metric for early stopping
(which then raises), no best checkpoint to test. :class:`ValidateOnLastStep` has it validate after its last step,
so that it checkpoints and ``fit`` tests it as a full run; where no validation can run, :func:`never_validated`
is the one-line error that names the setting. :func:`quiet_lightning` silences what a user cannot act on, and
:func:`show_project_notices` prints what the project has to say.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer

from seqmodels.models.sequence_model import SequenceModel


def cpu_runs_bf16_lstm() -> bool:
    """Whether oneDNN can run an LSTM in bfloat16 on this CPU: only with bf16 instructions (AVX-512 BF16, AMX)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_precision(trainer: Trainer) -> None:
    """One line for bf16 on a CPU without bf16 instructions. There oneDNN fails on the first batch whose sentences
    all have one length (PyTorch runs those unpacked, through oneDNN), deep in the LSTM and only then."""
    if str(trainer.precision).startswith("bf16") and isinstance(trainer.accelerator, CPUAccelerator):
        if not cpu_runs_bf16_lstm():
            raise ValueError(f"trainer.precision: {trainer.precision} on the CPU needs bf16 instructions (AVX-512 "
                             "BF16 or AMX) for the LSTM, and this CPU has none; use 32-true here (bf16-mixed is "
                             "for a GPU: configs/trainer/gpu.yaml)")  # fmt: skip


def no_validation(trainer: Trainer) -> str | None:
    """The setting by which a fit ends before its first validation, or None: no validation batches, no epoch, or
    fewer epochs than validation waits for (``max_steps`` can end it sooner still, but only the data's size tells)."""
    every, epochs = trainer.check_val_every_n_epoch, trainer.max_epochs  # max_epochs -1 or None: no limit
    if trainer.limit_val_batches == 0:
        return "trainer.limit_val_batches is 0"
    if epochs == 0:
        return "trainer.max_epochs is 0"
    if every is not None and epochs is not None and 0 < epochs < every:
        return f"trainer.max_epochs is {epochs}, fewer than trainer.check_val_every_n_epoch ({every})"
    return None


def check_monitored(model: SequenceModel, trainer: Trainer, config: Namespace, fitting: bool = True) -> None:
    """One line naming a metric that the checkpoint callback, early stopping or the LR scheduler watches and
    that no head logs, or, for a fit, that no validation would log (:func:`no_validation`)."""
    def watcher(callback: Callback) -> str:
        keys = {ModelCheckpoint: "checkpoint.monitor", EarlyStopping: "early_stopping.monitor"}
        return next((key for cls, key in keys.items() if isinstance(callback, cls)), type(callback).__name__)

    watched = sorted((c.monitor, watcher(c)) for c in trainer.callbacks if getattr(c, "monitor", None))
    watched.sort(key=lambda item: item[1] != "checkpoint.monitor")  # the one that picks the best checkpoint first
    scheduler = config.model.lr_scheduler
    if scheduler is not None and (scheduler.init_args or {}).get("monitor"):
        watched.append((scheduler.init_args["monitor"], "model.lr_scheduler's monitor"))
    logged = model.metric_names("val") | {"train/loss"}
    for metric, watcher in watched:
        if metric not in logged:
            raise ValueError(f"{watcher} watches {metric}, which no head logs; the model logs {sorted(logged)}")
        if fitting and metric.startswith("val/") and (setting := no_validation(trainer)):
            raise ValueError(f"{watcher} watches {metric}, and {setting}: no validation logs it")


class ValidateOnLastStep(Callback):
    """Ends training through ``trainer.should_stop`` once the step that reaches ``trainer.max_steps`` is done.
    Lightning validates before a requested stop (as before an early stop), so that step is validated through the
    ordinary validation loop, the weight averaging's hooks included; early stopping then sees its metrics, and
    the checkpoint callback saves the best checkpoint and last.ckpt at the epoch's end. An epoch's last step,
    which Lightning validates anyway, is validated once. ``trainer.max_time`` ends a run the same way (Timer)."""

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


def never_validated(trainer: Trainer, monitor: str) -> str:
    """The error for a fit that ended before any validation logged ``monitor`` (checkpoint.monitor), so that it
    has no best checkpoint to test: which setting ended training first."""
    if trainer.global_step == 0:
        limits = [f"trainer.{key} is 0" for key in ("max_epochs", "max_steps", "limit_train_batches")
                  if getattr(trainer, key) == 0]  # fmt: skip
        limits += ["trainer.max_time ran out"] if any(isinstance(c, Timer) for c in trainer.callbacks) else []
        why = f"training stopped before its first step ({', '.join(limits) or 'no training batches'})"
    else:
        why = (f"training stopped after {trainer.current_epoch} epochs, and validation runs every "
               f"trainer.check_val_every_n_epoch ({trainer.check_val_every_n_epoch}) epochs")  # fmt: skip
    return f"checkpoint.monitor: no validation logged {monitor}, so there is no best checkpoint to test: {why}"


def quiet_lightning() -> None:
    """Silence what Lightning prints and no user of this project can act on (``main`` calls this inside its
    ``warnings.catch_warnings``), each for its reason:

    - torch's deprecation of ``LeafSpec``, which Lightning's own code instantiates
      (lightning/pytorch/utilities/_pytree.py: Lightning's to change);
    - the ``dirpath has changed`` warning of ``train.py test|validate|predict --ckpt_path``: each run logs to a new
      ``version_N``, so the checkpoint's folder always differs, and nothing is wrong;
    - the warning that a run resumed inside an epoch has a loader that is not resumable: the training loader skips
      the batches the epoch had trained (:func:`seqmodels.data.mixing.batches_already_trained`; tested);
    - "Checkpoint directory exists and is not empty": only a resumed fit writes into an existing ``version_N``, and
      it is that run's own;
    - the custom batch sampler warning of ``predict``: the data module's prediction batches return every sentence
      once, sorted by length, and the records are written in file order (tested: ``predictions.jsonl`` has one line
      per sentence, in order);
    - Lightning's log records that are notices, not warnings: the tip to install ``litlogger`` (a hosted tracker;
      this project logs to TensorBoard) and "Found current_model_state in the checkpoint" (the weight averaging
      restoring its raw weights, as it should, at every resume and after-fit test).
    """
    for message, category, module in NOISE:
        warnings.filterwarnings("ignore", message, category, module)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(not_a_notice)  # added once: one object


def show_project_notices() -> None:
    """Print the project's own notices (``seqmodels`` log records of level INFO: a validation split held out of train,
    a Hub split left out) on stderr, as Lightning prints its own. Python drops them where no handler takes them, and
    where the application configured logging itself (the root logger has a handler), they go there instead."""
    project = logging.getLogger("seqmodels")
    if not project.handlers and not logging.getLogger().handlers:  # added once per process
        project.addHandler(logging.StreamHandler())
        project.setLevel(logging.INFO)


NOISE = [  # (message regex, category, module regex) of the warnings quiet_lightning drops
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
    (r"The dirpath has changed from", UserWarning, r"lightning\.pytorch\.callbacks\.model_checkpoint"),
    (r"You are using a custom batch sampler", UserWarning, r"lightning\.pytorch\.utilities"),
    (r"You're resuming from a checkpoint that ended before the epoch ended", UserWarning, r"lightning\.pytorch"),
    (r"Checkpoint directory .* exists and is not empty", UserWarning, r"lightning\.pytorch\.callbacks"),
]
NOTICES = ("litlogger", "Found current_model_state in the checkpoint")  # Lightning's info records quiet_lightning drops


def not_a_notice(record: logging.LogRecord) -> bool:
    """False for the log records in NOTICES, which drops them."""
    message = record.getMessage()
    return not any(notice in message for notice in NOTICES)
