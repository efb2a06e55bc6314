"""train.py and its configs: every config parses, a tiny end-to-end fit logs what TensorBoard shows, a run of any
length ends validated and tested (or in one line naming the setting), and no run prints what a user cannot act on."""

import json
from pathlib import Path

import pytest
import yaml
from helpers import CONFIGS, ROOT, TRAIN_PY, run
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from seqmodels.cli import main

TASK_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if p.name != "base.yaml")
TINY = ["--data.train_size", "96", "--data.val_size", "24", "--data.test_size", "24", "--trainer.max_epochs", "2"]
TINY += ["--trainer.log_every_n_steps", "1"]


@pytest.mark.parametrize("config", TASK_CONFIGS, ids=lambda p: p.name)
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"], config_dir=CONFIGS)
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed and "TensorBoardLogger" in printed


@pytest.mark.parametrize("trainer_config", sorted((CONFIGS / "trainer").glob("*.yaml")), ids=lambda p: p.name)
def test_trainer_configs_parse_as_a_second_config(trainer_config, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "default.yaml"), "--config", str(trainer_config), "--print_config"],
             config_dir=CONFIGS)
    printed = capsys.readouterr().out
    for key, value in yaml.safe_load(trainer_config.read_text())["trainer"].items():
        assert "  " + yaml.safe_dump({key: value}).strip() in printed  # the second config's values win


def test_override_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "tagger.yaml"), "--model.encoder.hidden_size", "17", "--print_config"], config_dir=CONFIGS)
    assert "hidden_size: 17" in capsys.readouterr().out


def read_events(run_dir: Path) -> tuple[set[str], dict[str, float], set[str]]:
    """Every tag (scalars, images, text, PR curves, histograms), the HPARAMS metrics' values, and the
    hyperparameter names of a TensorBoard run."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    accumulator.Reload()
    tags = {tag for kind in ("scalars", "images", "tensors", "histograms") for tag in accumulator.Tags()[kind]}
    hparam_metrics = {t: accumulator.Scalars(t)[-1].value for t in accumulator.Tags()["scalars"] if t.startswith("hparams/")}
    hparam_names: set[str] = set()
    for content in accumulator.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparam_names |= set(data.session_start_info.hparams)
    return tags, hparam_metrics, hparam_names


@pytest.mark.slow
def test_fit_end_to_end_in_a_subprocess(tmp_path):
    command = [*TRAIN_PY, "fit", "--config", str(CONFIGS / "default.yaml"), *TINY]
    command += ["--data.cache_dir", str(tmp_path / "cache"), "--trainer.callbacks.init_args.histograms", "true"]
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tensorboard --logdir logs" in result.stdout
    # stdout is a pipe, not a terminal: plain progress lines, no bar redrawn with carriage returns
    assert "\r" not in result.stdout and "epoch 1 validated after" in result.stdout
    assert "tagger/acc" in result.stdout and "classifier/f1_macro" in result.stdout

    run_dir = tmp_path / "logs" / "default" / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    written = json.loads((run_dir / "metrics_fit.json").read_text())
    assert 0.0 <= written["test/tagger/acc"] <= 1.0 and "val/classifier/f1_macro" in written
    tags, hparam_metrics, hparam_names = read_events(run_dir)
    expected = {"train/loss", "val/loss", "test/loss"} | {
        f"{stage}/{head}/{metric}" for stage in ("val", "test") for head in ("tagger", "classifier") for metric in ("acc", "f1_macro")
    }
    assert expected <= tags
    assert any(t.startswith("lr-") for t in tags)
    assert "hp_metric" not in tags
    reports = {f"{stage}/{head}/confusion_matrix" for stage in ("val", "test") for head in ("tagger", "classifier")}
    reports |= {"val/tagger/per_class/text_summary", "test/examples/text_summary", "val/classifier/pr_curve"}
    assert reports <= tags, reports - tags
    assert any(t.startswith("weights/encoder.lstm") for t in tags) and any(t.startswith("gradients/") for t in tags)
    assert 0.0 <= hparam_metrics["hparams/test/tagger/acc"] <= 1.0
    assert "hparams/val/classifier/acc" in hparam_metrics
    assert "model/encoder/hidden_size" in hparam_names and "data/batch_size" in hparam_names


def write_conll2003_like(path: Path, sentences: int, seed: int) -> None:
    """Invented sentences in CoNLL-2003's four columns with IOB1 entity tags (I- unless two entities touch)."""
    import random

    rng = random.Random(seed)
    people, places = ["Ann Lee", "Bo Chen", "Cy Dunn"], ["Oslo", "Lima", "New Delhi"]
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(sentences):
        person, place = rng.choice(people).split(), rng.choice(places).split()
        words = [(w, "NNP", "I-NP", "I-PER") for w in person] + [("visited", "VBD", "I-VP", "O")]
        words += [(w, "NNP", "I-NP", "I-LOC") for w in place] + [(".", ".", "O", "O")]
        lines += [" ".join(w) for w in words] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def test_ner_config_reads_iob1_and_monitors_span_f1(tmp_path, capsys):
    files = {}
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        files[split] = tmp_path / f"eng.{split}"
        write_conll2003_like(files[split], 40, seed)
    args = ["fit", "--config", str(CONFIGS / "conll2003_ner.yaml"), "--trainer.max_epochs", "2"]
    args += [f"--data.{split}_file={path}" for split, path in files.items()]
    args += ["--data.cache_dir", str(tmp_path / "cache"), "--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    args += ["--trainer.enable_progress_bar", "false"]
    cli = main(args, config_dir=CONFIGS)
    assert cli.model.vocabularies["tagger"].itos == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]  # IOB1 -> IOB2
    assert cli.trainer.checkpoint_callback.monitor == "val/tagger/span_f1"
    assert "tagger/span_f1" in capsys.readouterr().out  # a row of the final metrics table


def test_find_checkpoint_takes_the_newest_run(tmp_path):
    import torch

    from seqmodels.checkpoints import find_checkpoint

    for version in (0, 2, 10):
        folder = tmp_path / f"version_{version}" / "checkpoints"
        folder.mkdir(parents=True)
        best = folder / "epoch=3-step=9.ckpt"
        best.write_bytes(b"")
        state = {"ModelCheckpoint{'monitor': 'val/loss'}": {"best_model_path": str(best)}}
        torch.save({"callbacks": state}, folder / "last.ckpt")
    (tmp_path / "version_11_copy" / "checkpoints").mkdir(parents=True)  # a user's folder, not a run of Lightning's
    (tmp_path / "version_11_copy" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert find_checkpoint(tmp_path, "last") == tmp_path / "version_10" / "checkpoints" / "last.ckpt"
    assert find_checkpoint(tmp_path, "best") == tmp_path / "version_10" / "checkpoints" / "epoch=3-step=9.ckpt"
    with pytest.raises(FileNotFoundError, match="no earlier run"):
        find_checkpoint(tmp_path / "elsewhere", "last")


def test_a_fit_beside_a_run_that_stopped_before_its_end_names_the_option_that_continues_it(tmp_path, monkeypatch,
                                                                                          capsys):
    from seqmodels.checkpoints import unfinished_run

    stopped = tmp_path / "logs" / "default" / "version_3"
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "checkpoints" / "last.ckpt").write_bytes(b"")  # killed: a checkpoint, no final metrics
    (tmp_path / "logs" / "default" / "version_4").mkdir()  # a rerun killed before its first checkpoint
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(CONFIGS / "default.yaml"), *TINY, "--trainer.max_steps", "1",
          "--trainer.enable_progress_bar", "false", "--data.cache_dir", str(tmp_path / "cache")], CONFIGS)  # fmt: skip
    last = Path("logs", "default", "version_3", "checkpoints", "last.ckpt")
    assert f"to continue that one instead, rerun with --ckpt_path {last}" in capsys.readouterr().err
    assert (tmp_path / "logs" / "default" / "version_5" / "metrics_fit.json").is_file()  # the new run, finished
    assert unfinished_run(tmp_path / "logs" / "default") is None  # the newest run now has its final metrics


def train(tmp_path: Path, *args: str, subcommand: str = "fit") -> dict[str, float]:
    """Run ``train.py`` in a subprocess in ``tmp_path``; the metrics it reported."""
    result = run([*TRAIN_PY, subcommand, "--config", str(CONFIGS / "default.yaml"), *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = (tmp_path / "logs").glob(f"*/version_*/metrics_{subcommand}.json")
    return json.loads(written.read_text())


@pytest.mark.slow
def test_ddp_on_the_cpu_shares_the_batches_and_syncs_the_metrics(tmp_path):
    """Two CPU processes (gloo): each rank takes half the batches; the reported metrics are those of the
    whole split; and the result is close to one process's with the same global batch size."""
    import torch

    data = ["--data.train_size", "400", "--data.val_size", "48", "--data.test_size", "48", "--trainer.max_epochs", "3"]
    ddp = ["--config", str(CONFIGS / "trainer" / "ddp.yaml"), "--trainer.accelerator", "cpu", "--trainer.devices", "2"]
    cache = ["--data.cache_dir", str(tmp_path / "cache")]
    (tmp_path / "ddp").mkdir()
    distributed = train(tmp_path / "ddp", *ddp, *data, *cache, "--data.batch_size", "16")
    (best,) = (tmp_path / "ddp" / "logs").glob("*/version_0/checkpoints/epoch*.ckpt")
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["global_step"] == (checkpoint["epoch"] + 1) * (400 // 16 // 2)  # 12 steps per epoch per rank

    (tmp_path / "alone").mkdir()  # the same weights evaluated by one process: the synchronised metrics
    alone = train(tmp_path / "alone", *data, *cache, "--ckpt_path", str(best), subcommand="test")
    for key, value in alone.items():  # torchmetrics states are summed over ranks: exact. A loss is the mean of
        tolerance = 0.02 * value if key.endswith("loss") else 1e-6  # each rank's mean: close
        assert distributed[key] == pytest.approx(value, abs=tolerance), key

    (tmp_path / "single").mkdir()  # one process, the same global batch of 32
    single = train(tmp_path / "single", *data, *cache, "--data.batch_size", "32")
    for key in ("test/tagger/acc", "test/classifier/acc"):
        assert abs(distributed[key] - single[key]) < 0.1, (key, distributed[key], single[key])


@pytest.mark.slow
def test_ddp_with_two_corpora_every_rank_draws_the_same_corpora_and_the_metrics_are_the_whole_splits(tmp_path):
    """A tagger fed by one corpus and a classifier by another, on two processes: each step every rank takes a
    batch of the same corpus (its own share of it); the synced metrics equal one process's evaluation."""
    import os

    import torch

    corpora = {name: {"format": "synthetic", "train_size": 200, "val_size": 40, "test_size": 40, "corpus_seed": seed,
                      "heads": [head]} for name, seed, head in (("tags", 1, "tagger"), ("labels", 2, "classifier"))}
    data = ["--data.corpora", json.dumps(corpora), "--trainer.max_epochs", "2", "--data.batch_size", "16",
            "--data.cache_dir", str(tmp_path / "cache")]  # fmt: skip
    ddp = ["--config", str(CONFIGS / "trainer" / "ddp.yaml"), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
           "--trainer.callbacks+=helpers.RecordCorpora"]  # fmt: skip
    (tmp_path / "ddp").mkdir()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    distributed = train(tmp_path / "ddp", *ddp, *data)
    orders = [json.loads((tmp_path / "ddp" / f"corpora_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert orders[0] == orders[1] and {tuple(step) for step in orders[0]} == {("tagger",), ("classifier",)}
    assert len(orders[0]) == 2 * 2 * (200 // 16 // 2)  # 2 epochs of 6 batches a corpus a rank
    (best,) = (tmp_path / "ddp" / "logs").glob("*/version_0/checkpoints/epoch*.ckpt")
    (tmp_path / "alone").mkdir()
    alone = train(tmp_path / "alone", *data, "--ckpt_path", str(best), subcommand="test")
    assert {"test/tagger/acc", "test/classifier/acc"} <= set(alone)
    for key, value in alone.items():
        tolerance = 0.02 * value if key.endswith("loss") else 1e-6
        assert distributed[key] == pytest.approx(value, abs=tolerance), key
    del torch


def test_hparams_hold_the_settings_that_apply_to_the_run(tmp_path, monkeypatch):
    """A CoNLL-U tagger: its model, optimizer and data settings; no synthetic sizes, no optimizer internals."""
    monkeypatch.chdir(tmp_path)
    write_conll2003_like(tmp_path / "train.conll", 20, 0)
    args = ["fit", "--config", str(CONFIGS / "conll2003_ner.yaml"), "--trainer.max_epochs", "1"]
    args += ["--data.train_file", "train.conll", "--data.cache_dir", "cache", "--trainer.enable_progress_bar", "false"]
    main(args, config_dir=CONFIGS)
    _, metrics, names = read_events(tmp_path / "logs" / "conll2003_ner" / "version_0")
    assert {"model/encoder/hidden_size", "model/tagger/crf", "model/optimizer/lr", "data/format", "data/tag_scheme",
            "data/val_fraction", "data/max_word_length", "trainer/max_epochs", "trainer/max_steps"} <= names
    assert not {name for name in names if name.startswith("model/classifier")}  # classifier: null
    assert not {"data/train_size", "data/corpus_seed", "data/granularity", "data/cache_dir", "data/val_file"} & names
    assert not {"model/optimizer/init_args/foreach", "model/optimizer/foreach", "model/optimizer/capturable"} & names
    assert "hparams/val/tagger/span_f1" in metrics


@pytest.mark.slow
@pytest.mark.parametrize(("config", "steps"), [("tagger.yaml", 1), ("default.yaml", 10)], ids=["tagger", "default"])
def test_a_run_shorter_than_an_epoch_validates_checkpoints_and_tests(tmp_path, config, steps):
    """docs/training.md's ``train.py fit --config configs/CONFIG`` stopped by max_steps inside its first epoch (125
    steps of the synthetic corpus): it validates after its last step, saves that as its best checkpoint, and tests it."""
    result = run([*TRAIN_PY, "fit", "--config", str(CONFIGS / config), "--trainer.max_steps", str(steps)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path("logs") / Path(config).stem / "version_0"
    best = run_dir / "checkpoints" / f"epoch=0-step={steps}.ckpt"
    assert f"best checkpoint: {best}" in result.stdout
    assert (tmp_path / best).is_file() and (tmp_path / run_dir / "checkpoints" / "last.ckpt").is_file()
    written = json.loads((tmp_path / run_dir / "metrics_fit.json").read_text())
    assert {"val/loss", "test/loss", "val/tagger/acc", "test/tagger/acc"} <= set(written)


VALIDATION_OFF = "checkpoint.monitor watches val/loss, and trainer.limit_val_batches is 0: no validation logs it"
NO_EPOCH = "checkpoint.monitor watches val/loss, and trainer.max_epochs is 0: no validation logs it"
TOO_FEW_EPOCHS = ("checkpoint.monitor watches val/loss, and trainer.max_epochs is 2, fewer than "
                  "trainer.check_val_every_n_epoch (3): no validation logs it")  # fmt: skip
NO_STEP = "no best checkpoint to test: training stopped before its first step (trainer.max_steps is 0)"
NO_EPOCH_TRAINED = "no validation logged train/loss, so there is no best checkpoint to test: training stopped before " \
    "its first step (trainer.max_epochs is 0)"  # fmt: skip
NO_VALIDATION_EPOCH = "stopped after 2 epochs, and validation runs every trainer.check_val_every_n_epoch (3)"
TRAIN_LOSS = ["--checkpoint.monitor", "train/loss", "--checkpoint.mode", "min"]  # a metric no validation logs


@pytest.mark.parametrize(
    ("extra", "setting"),
    [
        (["--trainer.limit_val_batches", "0"], VALIDATION_OFF),
        (["--trainer.max_epochs", "0"], NO_EPOCH),
        (["--trainer.check_val_every_n_epoch", "3"], TOO_FEW_EPOCHS),  # TINY: 2 epochs
        (["--trainer.max_steps", "0"], NO_STEP),
        ([*TRAIN_LOSS, "--trainer.max_epochs", "0"], NO_EPOCH_TRAINED),
        (["--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "3", "--trainer.max_steps", "6"],
         NO_VALIDATION_EPOCH),  # TINY: 3 steps an epoch
    ],
    ids=["validation-off", "no-epoch", "too-few-epochs", "no-step", "no-epoch-trained", "no-validation-epoch"],
)  # fmt: skip
def test_a_metric_no_validation_logged_is_one_line_naming_the_setting(tmp_path, monkeypatch, capsys, extra, setting):
    """Refused before training where the settings say it (the first three), else when training ends."""
    monkeypatch.chdir(tmp_path)
    steps = Steps()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "tagger.yaml"), *TINY, "--trainer.enable_progress_bar", "false", *extra],
             config_dir=CONFIGS, callbacks=[steps])  # fmt: skip
    assert exit_info.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and setting in errors[0], errors
    assert (steps.taken > 0) == ("stopped after" in setting)  # trained only where no setting said it before


class Steps(Callback):
    """Counts the training steps taken."""

    taken = 0

    def on_train_batch_end(self, *args) -> None:
        self.taken += 1


@pytest.mark.slow
def test_a_validation_split_held_out_of_train_is_said_on_stderr(tmp_path):
    train_file = tmp_path / "train.txt"
    train_file.write_text("".join(f"{i % 2} a sentence numbered {i}\n" for i in range(40)))
    command = [*TRAIN_PY, "fit", "--config", str(CONFIGS / "text_classification.yaml"), "--trainer.max_steps", "1",
               "--data.train_file", str(train_file), "--data.cache_dir", str(tmp_path / "cache")]  # fmt: skip
    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no validation file: holding out 4 of 40 training sentences as validation" in result.stderr


def test_a_run_prints_no_warning_the_user_cannot_act_on(tmp_path):
    """Bare ``train.py``'s config and task (tiny), with the weight averaging the real-data configs have, then ``test``
    and ``predict`` of its checkpoint: no deprecation from Lightning's internals, no litlogger tip, no notice about
    restoring or not restoring the average, about the checkpoint's folder or about the prediction batches."""
    args = ["--config", str(CONFIGS / "default.yaml"), *TINY,
            "--weight_averaging", "seqmodels.callbacks.ExponentialMovingAverage"]  # fmt: skip
    outputs = []
    for subcommand in ("fit", "test", "predict"):
        more = ["--ckpt_path", "last"] if subcommand != "fit" else []
        result = run([*TRAIN_PY, subcommand, *args, *more], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs += (result.stdout + result.stderr).splitlines()
    words = ("leafspec", "litlogger", "deprecat", "current_model_state", "weightaveraging", "dirpath", "batch sampler")
    assert not [line for line in outputs if any(word in line.lower() for word in words)]


def test_a_step_budget_without_an_epoch_cap_validates_and_tests(tmp_path, monkeypatch):
    """``max_epochs: null`` with ``max_steps`` (how ud_upos.yaml and ud_joint.yaml set their budget) is no limit on
    epochs, not a setting that stops validation."""
    monkeypatch.chdir(tmp_path)
    cli = main(["fit", "--config", str(CONFIGS / "tagger.yaml"), *TINY, "--trainer.enable_progress_bar", "false",
                "--trainer.max_epochs", "null", "--trainer.max_steps", "4"], config_dir=CONFIGS)  # fmt: skip
    assert cli.trainer.global_step == 4 and Path(cli.trainer.checkpoint_callback.best_model_path).is_file()
    assert "test/tagger/acc" in cli.trainer.callback_metrics  # validated, so it had a best checkpoint to test
