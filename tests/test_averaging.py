"""The weight average (ExponentialMovingAverage): its fused update is the per-tensor formula, it warms up so that a run
shorter than its span is not dragged back to its first steps, validation logs the raw weights beside it, and the
averaged weights are what validation, the test after fit and the checkpoint use."""

import json
import types
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import CONFIGS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.optim.swa_utils import AveragedModel

from seqmodels.averaging import ExponentialMovingAverage, WarmedUpDecay
from seqmodels.checkpoints import read_checkpoint
from seqmodels.cli import main

AVERAGING = ["--weight_averaging", "seqmodels.callbacks.ExponentialMovingAverage"]  # its defaults: over ~3 epochs


def synthetic(config: str, *options: str, train: int = 200, val: int = 40) -> list[str]:
    """``train.py fit`` options for a small synthetic corpus (cached under the test's folder)."""
    return ["--config", str(CONFIGS / config), "--data.train_size", str(train), "--data.val_size", str(val),
            "--data.test_size", "40", "--data.cache_dir", "cache", "--trainer.enable_progress_bar", "false",
            *options]  # fmt: skip


@pytest.mark.parametrize(("max_share", "start"), [(0.1, 0), (None, 0), (0.1, 7)])
def test_the_fused_update_is_the_per_tensor_formula(max_share, start):
    """One ``torch._foreach_lerp_`` over every tensor gives what the formula gives tensor by tensor, warm-up included:
    a copy of the weights until the start, then decay_m = min(decay, 1 - 1 / (1 + max_share * m)) m updates after it
    (the decay alone without a bound)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.LSTM(3, 2))
    update = WarmedUpDecay(max_share=max_share, decay=0.98, start=start)
    averaged = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    expected = [p.detach().clone() for p in model.parameters()]
    for n in range(60):
        for p in model.parameters():
            p.data.add_(torch.randn_like(p))
        averaged.update_parameters(model)
        if n <= start:  # the first update copies, and so does every one until the start
            expected = [p.detach().clone() for p in model.parameters()]
            continue
        m = n - start
        decay = 0.98 if max_share is None else min(0.98, 1 - 1 / (1 + max_share * m))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters())]
    for got, want in zip(averaged.module.parameters(), expected):
        torch.testing.assert_close(got, want)


class Weights(L.LightningModule):
    """Parameters, float buffers (averaged) and an integer buffer (copied), as a model may have."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.LSTM(3, 2))


def fake_trainer(device: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device(device)), global_step=0)


@pytest.mark.parametrize("start", [0, 5])
def test_the_callbacks_update_is_torchs_update_bit_for_bit(start):
    """The callback's update, on lists of the weights gathered once, gives exactly what torch's
    ``AveragedModel.update_parameters`` gives, the first update's copy and the warm-up included."""
    torch.manual_seed(0)
    model, trainer, callback = Weights(), fake_trainer("cpu"), ExponentialMovingAverage()
    callback.setup(trainer, model, "fit")
    callback.update.decay, callback.update.start = 0.9, start
    torch_average = AveragedModel(model, multi_avg_fn=WarmedUpDecay(max_share=0.1, decay=0.9, start=start),
                                  use_buffers=True)  # fmt: skip
    for step in range(1, 30):
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.add_(torch.randn_like(tensor.float()).to(tensor.dtype))
        trainer.global_step = step
        callback.on_train_batch_end(trainer, model, None, None, step - 1)
        torch_average.update_parameters(model)
    ours = [*callback._average_model.module.parameters(), *callback._average_model.module.buffers()]
    theirs = [*torch_average.module.parameters(), *torch_average.module.buffers()]
    assert len(ours) == len(theirs) == 11 and all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert int(callback._average_model.n_averaged) == int(torch_average.n_averaged) == 29
    assert not torch.equal(ours[0], next(model.parameters()))  # an average, not a copy


def test_the_average_lives_on_the_device_that_trains():
    """Lightning's base class would take the module's device at ``setup``, the CPU's before the strategy moves the
    module; the callback takes the strategy's (``meta`` stands for a GPU here)."""
    callback = ExponentialMovingAverage()
    callback.setup(fake_trainer("meta"), Weights(), "fit")
    assert {tensor.device.type for tensor in callback._average_model.parameters()} == {"meta"}


def test_an_average_over_a_longer_span_than_the_run_follows_its_recent_weights():
    """Weights that move steadily (w_n = n) for 392 steps, averaged with a 588-step span (2 epochs of a 3-epoch
    span): without the warm-up the first step's weights keep exp(-391/588) = 51% of the average, which lags 190 steps
    behind; with it the average lags about a tenth of the steps."""
    def lag(max_share: float | None) -> float:
        model = nn.Linear(1, 1, bias=False)
        averaged = AveragedModel(model, multi_avg_fn=WarmedUpDecay(max_share=max_share, decay=1 - 1 / 588))
        for step in range(1, 393):
            model.weight.data.fill_(step)
            averaged.update_parameters(model)
        return 392 - averaged.module.weight.item()

    assert 0.05 * 392 < lag(0.1) < 0.15 * 392
    assert lag(None) > 0.45 * 392


def test_a_run_shorter_than_an_epoch_keeps_its_raw_weights(tmp_path, monkeypatch):
    """The average starts after the first epoch: in the steep first steps any average lags (a 30-step run averaged
    from its first step scored 0.812 against its raw weights' 0.841), so a run that ends before it keeps exactly its
    raw weights, and says so (val_raw/... equal to val/..., the loss included)."""
    monkeypatch.chdir(tmp_path)
    args = synthetic("tagger.yaml", *AVERAGING, "--trainer.max_steps", "30", train=1000, val=200)
    fitted = main(["fit", *args], CONFIGS)
    metrics = json.loads((Path(fitted.trainer.logger.log_dir) / "metrics_fit.json").read_text())
    assert fitted.trainer.global_step == 30 < fitted.trainer.num_training_batches
    for name in ("loss", "tagger/acc", "tagger/loss"):
        assert metrics[f"val/{name}"] == pytest.approx(metrics[f"val_raw/{name}"], abs=1e-6), name


def test_a_run_shorter_than_the_span_validates_its_average_no_worse_than_its_raw_weights(tmp_path, monkeypatch):
    """Under the defaults (a 3-epoch span), a 2-epoch run (64 steps): the average that the checkpoint keeps scores on
    validation what the raw weights score, within noise (val_raw/..., beside val/... in metrics_fit.json and
    TensorBoard). Without the warm-up the average kept half of the first step's weights: 0.797 against 0.979."""
    monkeypatch.chdir(tmp_path)
    args = synthetic("tagger.yaml", *AVERAGING, "--trainer.max_epochs", "2", train=1000, val=200)
    fitted = main(["fit", *args], CONFIGS)
    log_dir = Path(fitted.trainer.logger.log_dir)
    metrics = json.loads((log_dir / "metrics_fit.json").read_text())
    assert metrics["val/tagger/acc"] >= metrics["val_raw/tagger/acc"] - 0.01, metrics
    events = EventAccumulator(str(log_dir))
    events.Reload()
    assert {"val/tagger/acc", "val_raw/tagger/acc"} <= set(events.Tags()["scalars"])


def test_the_averaged_weights_are_what_validation_the_test_after_fit_and_the_checkpoint_use(tmp_path, monkeypatch):
    """With weight_averaging, the test right after fit scores the averaged weights, as `train.py test` of the best
    checkpoint does (Lightning's callback alone would test the raw ones); the checkpoint holds the average."""
    monkeypatch.chdir(tmp_path)
    args = synthetic("classifier.yaml", *AVERAGING, "--weight_averaging.epochs", "0.5",
                     "--weight_averaging.start_epochs", "0")  # averaging from the start, whichever epoch is best
    fitted = main(["fit", *args, "--trainer.max_epochs", "3"], CONFIGS)
    steps_per_epoch = fitted.trainer.num_training_batches  # 200 sentences in batches of 32: 7
    averaging = next(c for c in fitted.trainer.callbacks if type(c).__name__ == "ExponentialMovingAverage")
    assert averaging.update.decay == pytest.approx(1 - 1 / (0.5 * steps_per_epoch))  # half an epoch's steps
    after_fit = {k: float(v) for k, v in fitted.trainer.callback_metrics.items() if k.startswith("test/")}
    best = fitted.trainer.checkpoint_callback.best_model_path
    checkpoint = read_checkpoint(best)
    raw = checkpoint["current_model_state"]
    assert any(not torch.equal(raw[k], v) for k, v in checkpoint["state_dict"].items())  # an average, not the raw
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tested = main(["test", *args, "--ckpt_path", best], CONFIGS)
    assert not [w for w in caught if "WeightAveraging" in str(w.message)]  # nothing to restore outside fit: no notice
    standalone = {k: float(v) for k, v in tested.trainer.callback_metrics.items() if k.startswith("test/")}
    assert after_fit == standalone
