"""An exponential moving average of the weights (a Lightning ``WeightAveraging`` callback) that is never worse than
the raw weights by accident: it warms up, so a run shorter than its span is not dragged back to the first steps, and
validation logs the raw weights' metrics beside the averaged ones (``val_raw/...``) so that the difference shows.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor


class ExponentialMovingAverage(WeightAveraging):
    """An exponential moving average of the weights, updated after every optimizer step, over about the last
    ``epochs`` epochs: the decay is 1 - 1 / (epochs x steps per epoch), so the average covers the same share of
    training whatever the data's size (a fixed decay of 0.999 spans 5 epochs of a 6,900-sentence corpus and 30 of a
    1,000-sentence one).

    Warm-up: the average never spans more than ``max_share`` of the steps taken so far (its decay at step n is
    min(decay, 1 - 1 / (1 + max_share x n)), the form of TensorFlow's ``num_updates``). Without it, an average that
    starts from the first step's weights keeps exp(-steps / span) of them: about half after 2 of 3 epochs, which
    cost a 392-step XPOS run 27 points. With it no early step keeps a weight that the span did not give it, so the
    warm-up is also the bias correction (the average starts from real weights, not from zeros, so there is no other).

    Validation, the checkpoints (best and last), the test after fit, ``train.py test`` and prediction all use the
    averaged weights; Lightning's base class swaps them in for validation only, so this one swaps them in for
    testing too. With ``log_raw`` each validation also scores the raw weights and logs ``val_raw/<head>/<metric>``
    (one more forward pass over the validation set).

    Args:
        epochs: how many of the last epochs the average mostly covers (their share of the weight: 1 - 1/e).
        max_share: the largest share of the steps so far that the average spans (the warm-up); None for none, a
            plain exponential average from the first step (the earlier behaviour: ``NO_WARMUP`` in
            ``benchmarks/results.py``).
        log_raw: also validate the raw weights, as ``val_raw/...``.
    """

    def __init__(self, epochs: float = 3.0, max_share: float | None = 0.1, log_raw: bool = True) -> None:
        if epochs <= 0 or not (max_share is None or 0 < max_share <= 1):
            raise ValueError(f"weight_averaging: epochs must be > 0 and max_share in (0, 1], got {epochs}, {max_share}")
        self.epochs, self.log_raw = epochs, log_raw
        self.update = WarmedUpDecay(max_share=max_share)
        super().__init__(multi_avg_fn=self.update)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.update.decay = 1 - 1 / max(1.0, self.epochs * trainer.num_training_batches)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # the average in pl_module, the raw weights in ours
        if self._average_model is not None:
            self._average_model.module.eval()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._scores_raw(trainer):
            with torch.no_grad(), trainer.precision_plugin.val_step_context():
                self._average_model.module.losses_and_predictions(batch, "val")  # updates its own metrics

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._scores_raw(trainer):
            raw = self._average_model.module.epoch_metrics("val", trainer.strategy.reduce)  # (every process calls)
            pl_module.log_dict({"val_raw/" + key.removeprefix("val/"): value for key, value in raw.items()},
                               sync_dist=True)  # fmt: skip
        super().on_validation_epoch_end(trainer, pl_module)  # the raw weights back in pl_module

    def _scores_raw(self, trainer: L.Trainer) -> bool:
        """Whether this validation scores the raw weights too: in fit and the validation after it, not the sanity
        check (nothing trained yet) nor a test."""
        return self.log_raw and self._average_model is not None and not trainer.sanity_checking and not trainer.testing

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # swaps the averaged weights in

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_end(trainer, pl_module)  # and back


class WarmedUpDecay:
    """``averaged <- decay_n * averaged + (1 - decay_n) * current`` over every tensor at once (one fused
    ``torch._foreach_lerp_``: ``AveragedModel``'s ``multi_avg_fn``), with decay_n = min(decay, 1 - 1 / (1 +
    max_share x n)) after n updates (decay alone when ``max_share`` is None). The decay is set once the number of
    steps per epoch is known. The weight is a tensor on the parameters' device, so a GPU step does not wait for the
    host."""

    def __init__(self, max_share: float | None, decay: float = 0.999) -> None:
        self.max_share, self.decay = max_share, decay

    def weight(self, num_averaged: Tensor) -> Tensor:
        """The current weights' share, 1 - decay_n, after ``num_averaged`` updates."""
        if self.max_share is None:
            return torch.full_like(num_averaged, 1 - self.decay, dtype=torch.float64)
        return torch.clamp(1 / (1 + self.max_share * num_averaged.double()), min=1 - self.decay)

    @torch.no_grad()
    def __call__(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # integer buffers (none today) follow the model
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, self.weight(num_averaged).to(averaged[0].dtype))
