"""An exponential moving average of the weights (a Lightning ``WeightAveraging`` callback) that is never worse than
the raw weights by accident: it warms up, so a run shorter than its span is not dragged back to the first steps, and
validation logs the raw weights' metrics beside the averaged ones (``val_raw/...``) so that the difference shows.
"""

from __future__ import annotations

import itertools

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn
from torchmetrics import MeanMetric


class ExponentialMovingAverage(WeightAveraging):
    """An exponential moving average of the weights, updated after every optimizer step, over about the last
    ``epochs`` epochs: the decay is 1 - 1 / (epochs x steps per epoch), so the average covers the same share of
    training whatever the data's size (a fixed decay of 0.999 spans 5 epochs of a 6,900-sentence corpus and 30 of a
    1,000-sentence one).

    Warm-up: the average starts after ``start_epochs`` (before, it is the current weights: in the steep first epoch
    any average lags behind them), and then never spans more than ``max_share`` of the steps since its start (its
    decay m steps in is min(decay, 1 - 1 / (1 + max_share x m)), the form of TensorFlow's ``num_updates``). Without
    it, an average that starts from the first step's weights keeps exp(-steps / span) of them: about half after 2 of
    3 epochs, which cost a 392-step XPOS run 27 points. With it no early step keeps a weight that the span did not
    give it, so the warm-up is also the bias correction (the average starts from real weights, not from zeros, so
    there is no other).

    Validation, the checkpoints (best and last), the test after fit, ``train.py test`` and prediction all use the
    averaged weights; Lightning's base class swaps them in for validation only, so this one swaps them in for
    testing too. With ``log_raw`` each validation also scores the raw weights and logs ``val_raw/<head>/<metric>``
    (one more forward pass over the validation set).

    Args:
        epochs: how many of the last epochs the average mostly covers (their share of the weight: 1 - 1/e).
        start_epochs: how many epochs of training before the average starts.
        max_share: the largest share of the steps since its start that the average spans; None for no such bound.
            ``start_epochs=0, max_share=None`` is a plain exponential average from the first step (the earlier
            behaviour: ``NO_WARMUP`` in ``benchmarks/results.py``).
        log_raw: also validate the raw weights, as ``val_raw/...``.
    """

    def __init__(
        self, epochs: float = 3.0, start_epochs: float = 1.0, max_share: float | None = 0.1, log_raw: bool = True
    ) -> None:
        if epochs <= 0 or start_epochs < 0 or not (max_share is None or 0 < max_share <= 1):
            raise ValueError("weight_averaging: expected epochs > 0, start_epochs >= 0 and max_share in (0, 1], got "
                             f"{epochs}, {start_epochs} and {max_share}")  # fmt: skip
        self.epochs, self.start_epochs, self.log_raw = epochs, start_epochs, log_raw
        self.update = WarmedUpDecay(max_share=max_share)
        self._raw_loss = MeanMetric()  # the raw weights' val_raw/loss (the heads' own losses are the model's metrics)
        self._groups: list[tuple[list[Tensor], list[Tensor]]] | None = None  # (averaged, current), gathered once
        super().__init__(multi_avg_fn=self.update)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """The average lives on the device that trains. (Lightning's base class takes the module's device, which at
        ``setup`` is still the CPU: on a GPU each update would copy every weight to the host and average there.)"""
        self._device = self._device or trainer.strategy.root_device
        self._groups = None
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        steps_per_epoch = trainer.num_training_batches
        self.update.decay = 1 - 1 / max(1.0, self.epochs * steps_per_epoch)
        self.update.start = round(self.start_epochs * steps_per_epoch)
        self._raw_loss.to(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """After each optimizer step, Lightning's update with torch's arithmetic (the first update copies, since
        :class:`WarmedUpDecay`'s share is 1 before the start), on lists of the weights gathered once: torch's
        ``AveragedModel.update_parameters`` walks every submodule, the metrics' included, at every step, and reads
        its update count on the host (on a GPU, a wait for the device at every step)."""
        if trainer.global_step <= self._latest_update_step or not self.should_update(step_idx=trainer.global_step - 1):
            return
        average = self._average_model
        if self._groups is None:
            self._groups = same_device_and_dtype(average.module, pl_module)
        for averaged, current in self._groups:
            self.update(averaged, current, average.n_averaged)  # one device: the average lives where the module does
        average.n_averaged += 1
        self._latest_update_step = trainer.global_step

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, pl_module)  # the average in pl_module, the raw weights in ours
        if self._average_model is not None:
            self._average_model.module.eval()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._scores_raw(trainer):
            with torch.no_grad(), trainer.precision_plugin.val_step_context():
                step = self._average_model.module.losses_and_predictions(batch, "val")  # updates its own metrics
            self._raw_loss.update(step["loss"], weight=step["batch_size"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._scores_raw(trainer):
            raw = self._average_model.module.epoch_metrics("val", trainer.strategy.reduce)  # (every process calls)
            raw["val/loss"] = self._raw_loss.compute()
            self._raw_loss.reset()
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

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """In fit, restore the average and the raw weights (Lightning's base class). Outside fit there is no average
        to restore: the checkpoint's weights are the average already, which is what testing and prediction use."""
        if self._average_model is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def same_device_and_dtype(average: nn.Module, model: nn.Module) -> list[tuple[list[Tensor], list[Tensor]]]:
    """The pairs (averaged, current) of parameters and buffers, as lists of one device and dtype each: what one fused
    update takes."""
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
    averaged_tensors = itertools.chain(average.parameters(), average.buffers())
    for averaged, current in zip(averaged_tensors, itertools.chain(model.parameters(), model.buffers()), strict=True):
        averaged_group, current_group = groups.setdefault((averaged.device, averaged.dtype), ([], []))
        averaged_group.append(averaged)
        current_group.append(current)
    return list(groups.values())


class WarmedUpDecay:
    """``averaged <- decay_n * averaged + (1 - decay_n) * current`` over every tensor at once (one fused
    ``torch._foreach_lerp_``: ``AveragedModel``'s ``multi_avg_fn``). After n updates, m = n - start of them since
    the average's start: decay_n = 0 (a copy) while m <= 0, then min(decay, 1 - 1 / (1 + max_share x m)) (decay
    alone when ``max_share`` is None). The decay and the start are set once the number of steps per epoch is known.
    The weight is a tensor on the parameters' device, so a GPU step does not wait for the host."""

    def __init__(self, max_share: float | None, decay: float = 0.999, start: int = 0) -> None:
        self.max_share, self.decay, self.start = max_share, decay, start

    def weight(self, num_averaged: Tensor) -> Tensor:
        """The current weights' share, 1 - decay_n, after ``num_averaged`` updates."""
        since_start = num_averaged.double() - self.start  # (), on the parameters' device
        if self.max_share is None:
            weight = torch.full_like(since_start, 1 - self.decay)
        else:
            weight = (1 / (1 + self.max_share * since_start.clamp(min=0))).clamp(min=1 - self.decay)
        return torch.where(since_start <= 0, 1.0, weight)

    @torch.no_grad()
    def __call__(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # integer buffers (none today) follow the model
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, self.weight(num_averaged).to(averaged[0].dtype))
