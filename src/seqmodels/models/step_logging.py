"""Which training steps log their losses: those whose values are read.

Lightning writes a training step's logged values every ``trainer.log_every_n_steps`` optimizer steps (and when the
run stops), and drops the other steps' values unread. Yet each ``self.log`` call costs about half a millisecond of
bookkeeping: on SST-2's short steps, the two calls a step made cost 5% of training speed (benchmarks/README.md). So
the training step logs on the steps that are written, on an epoch's last step and on the run's
(``trainer.max_steps``), whose loss the callbacks read then, and on every step when something may read the losses
after any step: a callback or learning-rate scheduler that monitors a ``train/`` metric (a checkpoint every n
steps), or the timer of ``trainer.max_time``, which may stop the run after any step (the logger then writes it).
What TensorBoard shows, and what every monitor reads, are as when every step logged.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Timer


def logs_step(trainer: L.Trainer | None, step: int) -> bool:
    """Whether training step ``step`` (``global_step`` before its update) logs its losses. Without a trainer (a step
    called by hand), always: ``self.log`` then only warns."""
    if trainer is None or trainer.fast_dev_run or trainer.should_stop or reads_any_step(trainer):
        return True
    if trainer.is_last_batch or 0 < trainer.max_steps <= step + 1:  # an epoch's last step, or the run's
        return True
    return trainer.log_every_n_steps > 0 and (step + 1) % trainer.log_every_n_steps == 0


def reads_any_step(trainer: L.Trainer) -> bool:
    """Whether the training losses may be read after any step: a ``train/`` metric monitored by a callback or a
    learning-rate scheduler, or a :class:`~lightning.pytorch.callbacks.Timer` (``trainer.max_time``)."""
    monitors = [getattr(callback, "monitor", None) for callback in trainer.callbacks]
    monitors += [config.monitor for config in trainer.lr_scheduler_configs]
    timed = any(isinstance(callback, Timer) for callback in trainer.callbacks)
    return timed or any(isinstance(monitor, str) and monitor.startswith("train/") for monitor in monitors)
