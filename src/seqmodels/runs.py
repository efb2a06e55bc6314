"""What the CLI's runs get beyond Lightning's defaults: a full run's end however short the run, and quiet output.

Lightning validates at the end of each epoch (or every ``trainer.val_check_interval``), so a run that
``trainer.max_steps`` stops inside an epoch would end between two validations: no metric for early stopping
(which then raises), no best checkpoint to test. :class:`ValidateOnLastStep` has it validate after its last step,
so that it checkpoints and ``fit`` tests it as a full run; where no validation can run, :func:`never_validated`
is the one-line error that names the setting. :func:`quiet_lightning` silences what a user cannot act on.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, Timer


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
        limits = [f"trainer.{key} is 0" for key in ("max_steps", "limit_train_batches") if getattr(trainer, key) == 0]
        limits += ["trainer.max_time ran out"] if any(isinstance(c, Timer) for c in trainer.callbacks) else []
        why = f"training stopped before its first step ({', '.join(limits) or 'no training batches'})"
    else:
        why = (f"training stopped after {trainer.current_epoch} epochs, and validation runs every "
               f"trainer.check_val_every_n_epoch ({trainer.check_val_every_n_epoch}) epochs")  # fmt: skip
    return f"checkpoint.monitor: no validation logged {monitor}, so there is no best checkpoint to test: {why}"


def quiet_lightning() -> None:
    """Silence what Lightning prints on every run and no user of this project can act on (``main`` calls this
    inside its ``warnings.catch_warnings``): torch's deprecation of ``LeafSpec``, which Lightning's own code
    instantiates (lightning/pytorch/utilities/_pytree.py: Lightning's to change), and Lightning's tip to install
    ``litlogger``, a hosted experiment tracker this project does not use (it logs to TensorBoard)."""
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning,
                            module=r"lightning\.pytorch\.utilities\._pytree")  # fmt: skip
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(not_litlogger_tip)  # added once: one object


def not_litlogger_tip(record: logging.LogRecord) -> bool:
    """False for Lightning's litlogger tip (a log record, not a warning), which drops it."""
    return "litlogger" not in record.getMessage()
