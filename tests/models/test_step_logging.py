"""The training step logs its losses only where they are read: on the steps Lightning's logger writes, on an epoch's
or the run's last step (callbacks read it then), and on every step when a monitor or a timer may read them after any
step; the logger writes what it wrote before."""

import csv

import lightning as L
import pytest
from helpers import random_examples
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from seqmodels.data.batching import PadCollator


def count_logs(model) -> list[tuple[str, int]]:
    """Record (name, global step) of each ``model.log`` call from now on; the calls still log."""
    logged: list[tuple[str, int]] = []
    log = model.log

    def counting_log(name, value, **options):
        logged.append((name, model.global_step))
        log(name, value, **options)

    model.log = counting_log
    return logged


class Reference(L.Callback):
    """Logs a value at every batch, so that the rows the logger writes are Lightning's own cadence; and records the
    global step of each epoch's last batch."""

    def __init__(self) -> None:
        self.last_batches: set[int] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.is_last_batch:
            self.last_batches.add(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.log("reference", float(batch_idx))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_logger_writes_every_loss_it_wrote_before_and_other_steps_log_nothing(make_model, tmp_path, accumulate):
    model = make_model(tagger={}, classifier={}, adversarial={"epsilon": 0.5})
    logged = count_logs(model)
    reference = Reference()
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, log_every_n_steps=3, logger=CSVLogger(tmp_path),
                        callbacks=[reference], limit_val_batches=0, accumulate_grad_batches=accumulate,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, DataLoader(random_examples(40), batch_size=4, collate_fn=PadCollator()))  # 10 batches an epoch

    rows = list(csv.DictReader((next(tmp_path.rglob("metrics.csv"))).open()))
    written = [int(row["step"]) for row in rows if row["reference"]]
    assert len(written) == 2 * 10 // accumulate // 3  # every third optimizer step
    for name in ("train/loss", "train/tagger/loss", "train/classifier/loss", "train/adversarial/loss"):
        assert [int(row["step"]) for row in rows if row[name]] == written, name
        steps = {step for logged_name, step in logged if logged_name == name}
        assert steps == set(written) | reference.last_batches, name  # and no other step called self.log
    assert len(logged) < 4 * 2 * 10  # the four losses of all 20 batches, before


def test_a_run_shorter_than_the_logging_cadence_still_logs_its_last_steps_loss(make_model, tmp_path):
    model = make_model(tagger={})
    trainer = L.Trainer(accelerator="cpu", max_steps=2, log_every_n_steps=50, logger=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, DataLoader(random_examples(40), batch_size=4, collate_fn=PadCollator()))  # 10 batches an epoch
    assert "train/loss" in trainer.callback_metrics  # what a callback monitoring train/loss reads at the end


@pytest.mark.parametrize(
    "reader",
    [lambda path: ModelCheckpoint(path, monitor="train/loss", every_n_train_steps=3),
     lambda path: Timer("00:01:00:00")],
    ids=["checkpoint-every-3-steps-on-train-loss", "max-time"],
)  # fmt: skip
def test_a_monitor_or_timer_that_may_read_after_any_step_has_every_step_log(make_model, tmp_path, reader):
    model = make_model(tagger={})
    logged = count_logs(model)
    trainer = L.Trainer(accelerator="cpu", max_steps=7, log_every_n_steps=50, logger=False, limit_val_batches=0,
                        callbacks=[reader(tmp_path)], enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, DataLoader(random_examples(40), batch_size=4, collate_fn=PadCollator()))
    assert sorted({step for _, step in logged}) == list(range(7))  # each step's own loss, whenever it is read
