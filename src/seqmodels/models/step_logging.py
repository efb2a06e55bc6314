"""Which training steps log their losses: those whose values Lightning's logger writes, and the last ones.

Lightning writes a training step's logged values every ``trainer.log_every_n_steps`` optimizer steps (and when the
run stops), and drops the other steps' values unread. Yet each ``self.log`` call costs about half a millisecond of
bookkeeping: on SST-2's short steps, the two calls a step made cost 5% of training speed (benchmarks/README.md). So
the training step logs only on the steps that are written, and on an epoch's last step and the run's
(``trainer.max_steps``), whose loss the callbacks read then (a checkpoint that monitors ``train/loss``, the metrics
of a short run). What TensorBoard shows is unchanged.
"""

from __future__ import annotations

import lightning as L


def logs_step(trainer: L.Trainer | None, step: int) -> bool:
    """Whether training step ``step`` (``global_step`` before its update) logs its losses. Without a trainer (a step
    called by hand), always: ``self.log`` then only warns."""
    if trainer is None or trainer.fast_dev_run or trainer.should_stop:
        return True
    if trainer.is_last_batch or 0 < trainer.max_steps <= step + 1:  # an epoch's last step, or the run's
        return True
    return trainer.log_every_n_steps > 0 and (step + 1) % trainer.log_every_n_steps == 0
