"""Interrupted training resumes exactly, runs are reproducible, checkpoints are safe, a NaN loss stops the run."""

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers import CONFIGS, ROOT, TRAIN_PY, child_env, run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from seqmodels.checkpoints import (
    FORMAT,
    KEY,
    AtomicCheckpointIO,
    CheckpointError,
    read_checkpoint,
)
from seqmodels.cli import main
from seqmodels.models import loss_guard
from seqmodels.inference.loading import load_model
from seqmodels.inference.predictor import Predictor

TRAIN = [*TRAIN_PY, "fit", "--config", str(CONFIGS / "default.yaml")]
SMALL = ["--data.train_size", "400", "--data.val_size", "48", "--data.test_size", "48", "--trainer.max_epochs", "3"]
SMALL += ["--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false"]


def run_dir(cwd: Path) -> Path:
    """The first run's folder of ``train.py fit`` in ``cwd``."""
    return cwd / "logs" / "default" / "version_0"


def train(cwd: Path, *extra: str) -> dict[str, float]:
    """``train.py fit`` on the small synthetic corpus in a subprocess; the best checkpoint's val/test metrics."""
    cwd.mkdir(parents=True, exist_ok=True)
    result = run([*TRAIN, *SMALL, "--data.cache_dir", str(cwd.parent / "cache"), *extra], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir(cwd) / "metrics_fit.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """An uninterrupted run (seed 0) in ``<root>/straight``."""
    root = tmp_path_factory.mktemp("runs")
    train(root / "straight")
    return root


@pytest.mark.parametrize(("stop_at", "said"), [(5, "to continue from {last}, rerun the same command with --ckpt_path "
                                                  "last"), (1, "no checkpoint was written yet")])  # fmt: skip
def test_ctrl_c_says_how_to_continue(tmp_path, monkeypatch, capsys, stop_at, said):
    """Lightning ends a Ctrl-C with "attempting graceful shutdown" only; the run then names the checkpoint that
    ``--ckpt_path last`` continues from (last.ckpt of the validation at step 4), or says there is none yet."""
    from seqmodels.models.sequence_model import SequenceModel

    training_step = SequenceModel.training_step

    def interrupted_at(self, batch, batch_idx):
        if self.global_step == stop_at:
            raise KeyboardInterrupt
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(SequenceModel, "training_step", interrupted_at)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "default.yaml"), *SMALL, "--trainer.val_check_interval", "4",
              "--trainer.limit_val_batches", "1", "--data.cache_dir", str(tmp_path / "cache")], CONFIGS)  # fmt: skip
    last = Path("logs", "default", "version_0", "checkpoints", "last.ckpt")
    assert last.is_file() == (stop_at > 4)
    assert f"Interrupted: {said.format(last=last)}" in capsys.readouterr().err


def metrics_of(root: Path, name: str) -> dict[str, float]:
    """The metrics of the run in ``root / name``."""
    return json.loads((run_dir(root / name) / "metrics_fit.json").read_text())


@pytest.mark.slow
def test_sigkill_in_the_second_epoch_then_resume_from_last_equals_an_uninterrupted_run(runs):
    cwd = runs / "killed"
    cwd.mkdir()
    command = [*TRAIN, *SMALL, "--data.cache_dir", str(runs / "cache")]
    process = subprocess.Popen(command, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir(cwd) / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # the first epoch's checkpoints are written: the second epoch is under way
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert read_checkpoint(last)["epoch"] == 0
    assert not (run_dir(cwd) / "metrics_fit.json").exists()
    checkpointed = read_checkpoint(last)["global_step"]
    with SummaryWriter(str(run_dir(cwd))) as writer:  # what the killed run could have logged after its checkpoint
        writer.add_scalar("train/loss", 123.0, checkpointed + 1)

    resumed = train(cwd, "--ckpt_path", "last")  # continues logs/default/version_0
    assert resumed == metrics_of(runs, "straight")  # deterministic CPU run: bit-for-bit the same metrics
    final = read_checkpoint(last)
    assert final["global_step"] == read_checkpoint(run_dir(runs / "straight") / "checkpoints" / "last.ckpt")["global_step"]
    # TensorBoard shows each step once, as the uninterrupted run's: what the killed run logged after its checkpoint
    # is hidden, and nothing it logged before is lost
    assert scalars(run_dir(cwd)) == scalars(run_dir(runs / "straight"))


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every scalar in the run's TensorBoard files, as TensorBoard shows them."""
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# configs/ud_upos.yaml's kind of run: a step budget (13 steps an epoch here), a plateau schedule, weight averaging
STEPS = ["--trainer.max_epochs", "null", "--model.lr_scheduler", "lightning.pytorch.cli.ReduceLROnPlateau",
         "--model.lr_scheduler.monitor", "val/loss", "--model.lr_scheduler.patience", "0",
         "--weight_averaging", "seqmodels.callbacks.ExponentialMovingAverage", "--weight_averaging.epochs", "1"]
STEPS += ["--checkpoint.mode", "max"]  # the best checkpoint is epoch 0's (the loss falls): last.ckpt must move on


@pytest.mark.slow
def test_a_step_budget_stopped_inside_an_epoch_then_at_its_end_resumes_as_an_uninterrupted_run(runs):
    """Stopped at step 20 (inside epoch 1), resumed to 26 (its end: the batches it had trained are skipped), resumed
    to 39 (from a resumed run's end-of-epoch checkpoint, which Lightning replays): the same run as one to 39."""
    straight = train(runs / "steps_straight", *STEPS, "--trainer.max_steps", "39")
    expected = read_checkpoint(run_dir(runs / "steps_straight") / "checkpoints" / "last.ckpt")
    cwd = runs / "steps"
    train(cwd, *STEPS, "--trainer.max_steps", "20")
    checkpoints = run_dir(cwd) / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["epoch=0-step=13.ckpt", "last.ckpt"]
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 20  # not the best epoch's copy
    train(cwd, *STEPS, "--trainer.max_steps", "26", "--ckpt_path", "last")
    resumed = train(cwd, *STEPS, "--trainer.max_steps", "39", "--ckpt_path", "last")

    assert resumed == straight
    last = read_checkpoint(checkpoints / "last.ckpt")
    assert last["global_step"] == expected["global_step"] == 39
    assert all(torch.equal(last["state_dict"][key], value) for key, value in expected["state_dict"].items())
    assert last["lr_schedulers"] == expected["lr_schedulers"]  # the plateau schedule took every epoch's step once
    progress = last["loops"]["fit_loop"]["epoch_progress"]["total"]
    assert progress == expected["loops"]["fit_loop"]["epoch_progress"]["total"]  # each epoch counted once

    # From the best checkpoint, saved before the run's first last.ckpt: that last.ckpt is the one rewritten.
    shutil.copytree(runs / "steps_straight", runs / "from_best")
    best = run_dir(runs / "from_best") / "checkpoints" / "epoch=0-step=13.ckpt"
    train(runs / "from_best", *STEPS, "--trainer.max_steps", "26", "--ckpt_path", str(best))
    assert sorted(path.name for path in best.parent.iterdir()) == [best.name, "last.ckpt"]
    assert read_checkpoint(best.parent / "last.ckpt")["global_step"] == 26


@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_close(runs):
    again = train(runs / "again")
    assert again == metrics_of(runs, "straight")
    other = train(runs / "seed1", "--seed_everything", "1")
    straight = metrics_of(runs, "straight")
    assert other != straight
    assert abs(other["test/tagger/acc"] - straight["test/tagger/acc"]) < 0.05


@pytest.mark.slow
def test_checkpoints_record_the_version_and_the_config(runs):
    record = read_checkpoint(run_dir(runs / "straight") / "checkpoints" / "last.ckpt")[KEY]
    assert record["version"] == version("seqmodels") and record["format"] == FORMAT
    config = yaml.safe_load(record["config"])
    assert config["data"]["train_size"] == 400 and config["trainer"]["deterministic"] is True
    assert config["model"]["encoder"]["hidden_size"] == 128  # configs/default.yaml


@pytest.mark.slow
def test_older_checkpoints_load_and_newer_ones_say_why_not(runs, tmp_path):
    path = run_dir(runs / "straight") / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    sentences = [["the", "film", "was", "good"], ["nobody", "liked", "it"]]
    expected = Predictor(load_model(path))(sentences)

    older = tmp_path / "older.ckpt"  # as 0.1.0 wrote them: no "seqmodels" record
    torch.save({k: v for k, v in checkpoint.items() if k != KEY}, older)
    assert Predictor(load_model(older))(sentences) == expected

    newer = tmp_path / "newer.ckpt"
    torch.save({**checkpoint, KEY: {**checkpoint[KEY], "format": FORMAT + 1, "version": "9.0"}}, newer)
    with pytest.raises(CheckpointError, match=r"written by seqmodels 9.0 .*upgrade seqmodels"):
        load_model(newer)


class Payload:
    """Unpickling this would create a file: a stand-in for arbitrary code in a malicious checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_checkpoints_are_never_unpickled(tmp_path):
    evidence = tmp_path / "code-ran"
    malicious = tmp_path / "malicious.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"vocab": {"tokens": []}}, "x": Payload(str(evidence))}, malicious)
    with pytest.raises(CheckpointError, match="cannot read .*malicious.ckpt"):
        read_checkpoint(malicious)
    assert not evidence.exists()
    # Every load in the package says weights_only=True; the CLI passes it to Lightning (configs/base.yaml).
    for source in (ROOT / "src" / "seqmodels").rglob("*.py"):
        for line in source.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{source.name}: {line.strip()}"
    assert yaml.safe_load((CONFIGS / "base.yaml").read_text())["weights_only"] is True


SLOW_SAVE = """
import sys, time, torch
from seqmodels.checkpoints import AtomicCheckpointIO
path = sys.argv[1]
io = AtomicCheckpointIO()
io.save_checkpoint({"version": 1, "weights": torch.ones(4)}, path)

def slow_save(obj, file):  # half a checkpoint, then hang: the parent kills us mid-write
    file.write(b"PK" + bytes(4096))
    file.flush()
    print("writing", flush=True)
    time.sleep(60)

torch.save = slow_save
io.save_checkpoint({"version": 2, "weights": torch.zeros(4)}, path)
"""


def test_a_checkpoint_written_to_a_symlink_replaces_the_link_not_the_checkpoint_it_names(tmp_path):
    """Lightning's ``save_last: link`` makes last.ckpt a symlink to the best checkpoint; the next last.ckpt replaces
    the link, and the best checkpoint stays as it was."""
    best, last = tmp_path / "epoch=4-step=625.ckpt", tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 625}, best)
    last.symlink_to(best.name)
    AtomicCheckpointIO().save_checkpoint({"global_step": 750}, last)
    assert not last.is_symlink() and torch.load(last)["global_step"] == 750 and torch.load(best)["global_step"] == 625


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_usable(tmp_path):
    path = tmp_path / "last.ckpt"
    process = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["version"] == 1 and torch.equal(checkpoint["weights"], torch.ones(4))
    AtomicCheckpointIO().save_checkpoint({"version": 3}, path)  # the next save replaces the leftover partial file
    assert torch.load(path, weights_only=True)["version"] == 3


class PoisonWeights(L.Callback):
    """Turns the word embeddings into NaN before batch 2 of the second epoch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 1 and batch_idx == 2:
            with torch.no_grad():
                pl_module.encoder.embedding.weight.fill_(math.nan)


@pytest.mark.parametrize("read_every", [None, 4, 50], ids=["every step (CPU)", "every 4 steps", "at checkpoints"])
def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys, read_every
):
    """On the CPU the loss is read at every step; on a GPU every few steps and before each checkpoint (forced
    here on the CPU): either way the error names the first bad step and the checkpoints on disk are good."""
    monkeypatch.chdir(tmp_path)
    if read_every is not None:
        monkeypatch.setattr(loss_guard, "read_every", lambda device: read_every)
    args = ["fit", "--config", str(CONFIGS / "default.yaml"), "--data.cache_dir", str(tmp_path / "cache")]
    args += ["--data.train_size", "96", "--data.val_size", "16", "--data.test_size", "16", "--data.batch_size", "16"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.callbacks+=test_reliability.PoisonWeights"]
    with pytest.raises(SystemExit) as stop:
        main(args, config_dir=CONFIGS)
    assert stop.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in errors[0]
    if read_every is None:
        assert "the training loss is nan at global step 8 (epoch 1, batch 2: 16 sentences of lengths" in errors[0]
    else:  # steps 0-3 and 4-7 read fine at every 4; at 50, epoch 0's checkpoint read steps 0-5
        since = 8 if read_every == 4 else 6
        assert f"the training loss is not finite at global step 8 (found reading steps {since}-11" in errors[0]
    last = read_checkpoint(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 0 and last["global_step"] == 6  # 96 / 16 = 6 steps per epoch
    assert all(torch.isfinite(weights).all() for weights in last["state_dict"].values())
