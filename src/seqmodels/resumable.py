"""Lightning's checkpoint and early-stopping callbacks, with the fixes that make ``--ckpt_path last`` continue a run
as if it had never stopped.

1. ``save_last=True`` in Lightning 2.6 rewrites ``last.ckpt`` only when a new best checkpoint is saved at the same
   step, so ``last.ckpt`` is the best epoch's and resuming from it goes back in time. :class:`ResumableCheckpoint`
   writes it after every validation, as ``save_last`` did before 2.6.
2. A run with a step budget (``trainer.max_steps``, as in ``configs/ud_upos.yaml``) resumed from a checkpoint
   saved at an epoch's end has Lightning call that epoch's ``on_train_epoch_end`` hooks again, with no validation
   metrics: early stopping raised "metric not available". Both callbacks had run those hooks before the checkpoint
   was saved (the checkpoint is saved in them), so both skip the repeat.
3. Resuming from a best checkpoint saved before the run's first ``last.ckpt`` (``--ckpt_path best`` after a best
   first epoch) had Lightning write ``last-v1.ckpt`` beside the stale ``last.ckpt``, which ``--ckpt_path last`` finds.
4. A checkpoint saved at an epoch's end is saved before the plateau schedulers (``ReduceLROnPlateau``) step, and
   Lightning, which does not save the metrics they watch, skips that step on resuming, as it skips the step at the
   end of the first epoch after any restart: the resumed run's schedule fell behind. :class:`ResumableCheckpoint`
   records the validation metrics in the checkpoint and takes both steps.
5. A step budget that stops a run inside an epoch ends it through Lightning's epoch end, whose progress counters then
   say the epoch is over: resumed, it ran the rest of the epoch and counted it over twice, and the next resume from
   that run's end-of-epoch checkpoint crashed as in 2. :func:`repair_epoch_progress` marks such an epoch as unfinished
   when the checkpoint is loaded (the data module skips the batches it had trained).

6. Lightning ends a Ctrl-C with "attempting graceful shutdown" and nothing about continuing: the checkpoint callback
   names the checkpoint ``--ckpt_path last`` continues from.

Both keep Lightning's state keys, so checkpoints written by either class load into the other.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn


def replaying_epoch_end(trainer: Trainer) -> bool:
    """Whether this ``on_train_epoch_end`` repeats the one in which the run's checkpoint was saved (fix 2)."""
    return trainer.fit_loop.restarted_on_epoch_end


def resuming_at_epoch_end(trainer: Trainer) -> bool:
    """Whether training restarts from a checkpoint saved at an epoch's end, by step budget or by epochs."""
    return trainer.fit_loop.restarted_on_epoch_end or trainer.fit_loop.resumed_on_epoch_end


def step_plateau_schedulers(trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
    """The step the plateau schedulers take after ``epoch``'s validation, as Lightning's fit loop takes it."""
    for config in trainer.lr_scheduler_configs:
        due = config.reduce_on_plateau and config.interval == "epoch" and (epoch + 1) % config.frequency == 0
        if due and config.monitor in metrics:  # else Lightning's own step would have failed before (strict)
            trainer.lightning_module.lr_scheduler_step(config.scheduler, metrics[config.monitor])


def repair_epoch_progress(fit_loop: dict[str, Any]) -> None:
    """Mark the epoch of a checkpoint that a step budget saved inside it (fix 5) as unfinished, in the checkpoint's
    fit-loop state: Lightning then resumes it where it stopped. Also mends the counters of checkpoints written by
    runs resumed from such a checkpoint before this fix (an epoch processed twice)."""
    inside_epoch = not fit_loop["epoch_loop.batch_progress"].get("is_last_batch", True)
    for counts in fit_loop["epoch_progress"].values():  # "total" and "current"
        counts["processed"] = min(counts["processed"], counts["started"])
        if inside_epoch and counts["processed"] == counts["started"] == counts["completed"] + 1:
            counts["processed"] -= 1


class ResumableEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping``, which does not check again the epoch a resumed run's checkpoint ended."""

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, EarlyStopping.__qualname__, 1)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not replaying_epoch_end(trainer):
            super().on_train_epoch_end(trainer, pl_module)


class ResumableCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` (with ``save_last``) follows every validation, which
    does not save again at the epoch end a resumed run's checkpoint was saved at, and whose checkpoints carry the
    last validation's metrics for the plateau schedulers' step that resuming there would skip."""

    # No __init__ of its own: the CLI's `checkpoint:` section reads ModelCheckpoint's signature as it is.
    validation: dict[str, Any] | None = None  # {"epoch": E, "metrics": {name: value}}: the last validation
    plateau_step_due = False  # the plateau schedulers' step at this epoch's end is ours to take (fix 4)

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"validation": self.validation}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.validation = state_dict.get("validation")
        if self.save_last and not self.last_model_path and self.dirpath == state_dict.get("dirpath"):
            # a best checkpoint saved before the run's first last.ckpt: that last.ckpt is still the run's to rewrite
            # (else Lightning writes last-v1.ckpt beside it, and --ckpt_path last would find the stale one)
            self.last_model_path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if "fit_loop" in checkpoint.get("loops", {}):  # loaded before the loops are restored from it
            repair_epoch_progress(checkpoint["loops"]["fit_loop"])

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # Lightning skips the plateau step at the end of the first epoch after a restart: take it there (fix 4)
        self.plateau_step_due = trainer.fit_loop.restarting and not resuming_at_epoch_end(trainer)
        if not resuming_at_epoch_end(trainer) or not trainer.lr_scheduler_configs:
            return
        if self.validation is None:
            rank_zero_warn("The checkpoint has no validation metrics (it predates seqmodels.resumable): the plateau "
                           "schedulers miss the step of the epoch it ended")  # fmt: skip
        else:
            step_plateau_schedulers(trainer, self.validation["epoch"], self.validation["metrics"])

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if replaying_epoch_end(trainer):
            progress = trainer.fit_loop.epoch_progress  # the replay counted the epoch processed again, just before
            progress.total.processed, progress.current.processed = progress.total.started, progress.current.started
            return
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)
        if self.plateau_step_due:  # after the checkpoint, as Lightning steps after it
            step_plateau_schedulers(trainer, trainer.current_epoch, trainer.callback_metrics)
            self.plateau_step_due = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = {name: value.item() for name, value in trainer.callback_metrics.items() if value.numel() == 1}
            self.validation = {"epoch": trainer.current_epoch, "metrics": metrics}
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        if self.last_model_path and os.path.isfile(self.last_model_path):
            hint = f"to continue from {self.last_model_path}, rerun the same command with --ckpt_path last"
        else:
            hint = "no checkpoint was written yet (the first comes with the first validation); rerun to start again"
        print(f"Interrupted: {hint}", file=sys.stderr, flush=True)  # fix 6

    def _save_last(self, trainer: Trainer) -> None:
        """``last.ckpt``, unless this step was saved already (with a new best checkpoint, Lightning saves it too)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
