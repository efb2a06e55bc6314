"""The command line: LightningCLI over :class:`SequenceModel` and :class:`SequenceDataModule`.

``python train.py fit|validate|test|predict --config configs/NAME.yaml [--section.key value ...]``.
Bare ``python train.py`` runs ``fit --config configs/default.yaml``. ``fit`` ends by testing the best
checkpoint, however short the run (:mod:`seqmodels.runs`). Every run ends with a short metrics table and
writes its hyperparameters with the final metrics to TensorBoard's HPARAMS tab.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, WeightAveraging
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger

from seqmodels.callbacks import PlainProgress, PredictionsWriter
from seqmodels.checkpoints import (
    CheckpointError,
    check_fits,
    check_same_data,
    find_checkpoint,
    options_of_its_fit,
    read_checkpoint,
    unfinished_run,
)
from seqmodels.data.datamodule import SequenceDataModule
from seqmodels.data.embeddings import check_dimension
from seqmodels.models.encoder import LSTMEncoder
from seqmodels.models.heads import head_configs, head_field
from seqmodels.models.sequence_model import NAMED_HEADS, SequenceModel
from seqmodels.resumable import ResumableCheckpoint, ResumableEarlyStopping
from seqmodels.runs import (
    ValidateOnLastStep, check_monitored, check_precision, never_validated, quiet_lightning, show_project_notices,
)
from seqmodels.summary import format_metrics, run_hparams

SUBCOMMANDS = ("fit", "validate", "test", "predict")
CONFIG_DIR = Path("configs")  # base.yaml's folder, relative to where train.py runs
DEBUG_ENV = "SEQMODELS_DEBUG"  # =1, or --debug: errors with their full traceback
USER_ERRORS = (ValueError, OSError, FloatingPointError)  # bad data, config, checkpoint or files; a NaN loss
DEFAULT_EMBEDDING_DIM = inspect.signature(LSTMEncoder).parameters["embedding_dim"].default
_NOISE = ("Does not validate", "Subtypes:", "Errors:", "Given value", "Expected a <class 'NoneType'>")


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(message: str) -> str:
    """jsonargparse's several-line error, cut to the key and the first specific complaint."""
    lines = [line.strip().lstrip("- ") for line in message.strip().splitlines() if line.strip()]
    head, *details = [line for line in lines if not line.startswith(_NOISE)] or [message.strip()]
    if details:
        head = f"{head} {details[0]}"
    return re.sub(r"\. Got value: .{60,}$", "", head)


class ShortErrorParser(LightningArgumentParser):
    """Configuration errors in one line: ``train.py fit: error: Parser key "data.batch_size": Expected ...``."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if debugging() or not self.exit_on_error:  # jsonargparse's trial parses need the exception
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line(message)}{self._suggestion(message)} (see {prog} --help)\n")
        self.exit(2)

    def _suggestion(self, message: str) -> str:
        """For an unknown option (abbreviations are not expanded), the option it is closest to."""
        unknown = re.match(r"unrecognized arguments: (--[^\s=]+)", message.strip())
        close = difflib.get_close_matches(unknown[1], self._option_string_actions, n=1) if unknown else []
        return f"; did you mean {close[0]}?" if close else ""


class SeqModelsCLI(LightningCLI):
    """LightningCLI that links the data's vocabularies into the model and reports final metrics."""

    _checkpoint: dict | None = None  # the --ckpt_path checkpoint, read once, until before_fit has checked it
    test_after_fit = True  # fit ends by testing the best checkpoint (when the data has a test split)

    def add_arguments_to_parser(self, parser) -> None:
        # Checkpointing and early stopping are always on, configured under `checkpoint:` and
        # `early_stopping:`; early stopping watches the metric that picks the best checkpoint.
        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ResumableEarlyStopping, "early_stopping")
        # Optional: an average of the weights (e.g. seqmodels.callbacks.ExponentialMovingAverage) for validation,
        # the checkpoints and everything after them; null (the default) for none.
        parser.add_subclass_arguments(WeightAveraging, "weight_averaging", required=False, fail_untyped=False)
        parser.link_arguments("checkpoint.monitor", "early_stopping.monitor")
        parser.link_arguments("checkpoint.mode", "early_stopping.mode")
        # The data feeds the model's heads: tell it what each reads (data.fields), and check every corpus can.
        parser.link_arguments(tuple(f"model.{name}" for name in HEAD_KEYS), "data.fields", compute_fn=head_fields)
        # The model's sizes come from the data: pass the vocabularies once the data module exists.
        parser.link_arguments("data.vocab", "model.vocab", apply_on="instantiate")
        parser.link_arguments("data.initial_embeddings", "model.initial_embeddings", apply_on="instantiate")
        parser.link_arguments("data.data_options", "model.data_options", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with the ``weight_averaging`` callback when the config has one, a validation after the
        last step however short the run, and plain progress lines instead of a bar when stdout is not a terminal."""
        config = self.config_init[self.subcommand]
        callbacks = [*(config.trainer.callbacks or []), ValidateOnLastStep()]
        if config.weight_averaging is not None:
            callbacks.append(config.weight_averaging)
        if config.trainer.enable_progress_bar and not sys.stdout.isatty():
            callbacks.append(PlainProgress())
        return super().instantiate_trainer(**kwargs, callbacks=callbacks)  # in place of the config's list

    def _parse_ckpt_path(self) -> None:
        """Keep the config's model rather than, as LightningCLI does, the ``--ckpt_path`` checkpoint's hyperparameters:
        the data module builds the vocabularies, and :meth:`before_fit` checks that the checkpoint fits them."""

    def before_instantiate_classes(self) -> None:
        """Name the TensorBoard run after the first ``--config`` file (``logs/<config name>/version_N``), and
        resolve ``--ckpt_path best|last``; ``fit`` from a checkpoint of an earlier run continues that run's
        ``version_N``, so its checkpoint callback and early stopping pick up where they stopped."""
        config = self.config[self.subcommand]
        # a head the model would refuse, refused now rather than after the data is read
        head_configs(config.model.get("heads"), **{key: config.model.get(key) for key in NAMED_HEADS})
        if config.model.init_from and not config.data.pretrained_embeddings:
            config.data.pretrained_embeddings = config.model.init_from  # its words join the vocabulary, with vectors
        if config.data.pretrained_embeddings and config.data.pretrained_embeddings != config.model.init_from:
            # fail before the corpus is read, naming the file
            encoder = config.model.encoder or {}
            check_dimension(config.data.pretrained_embeddings, encoder.get("embedding_dim", DEFAULT_EMBEDDING_DIM))
        logger = config.trainer.logger
        init_args = getattr(logger, "init_args", None) if logger else None
        if init_args is not None and init_args.get("name") is None:
            config_files = [Path(str(p)) for p in (config.get("config") or [])]
            init_args.name = config_files[0].stem if config_files else "default"
        runs_dir = Path(init_args.save_dir or ".") / init_args.name if init_args is not None else None
        if not config.get("ckpt_path"):
            if self.subcommand == "fit" and runs_dir is not None and (notice := unfinished_run(runs_dir)):
                print(notice, file=sys.stderr)
            return
        if config.ckpt_path in ("best", "last"):
            if runs_dir is None:
                raise ValueError("--ckpt_path best|last looks in the logger's directory; give a path instead")
            config.ckpt_path = str(find_checkpoint(runs_dir, config.ckpt_path))
            print(f"Checkpoint: {config.ckpt_path}")
        self._checkpoint = read_checkpoint(config.ckpt_path)  # before the data is read: a bad file fails fast
        path = Path(config.ckpt_path).resolve()
        if self.subcommand == "fit" and runs_dir is not None and path.parent.parent.parent == runs_dir.resolve():
            init_args.version = int(path.parent.parent.name.removeprefix("version_"))
            if logger.class_path.endswith(".TensorBoardLogger"):  # TensorBoard hides what the stopped run logged from
                init_args.purge_step = self._checkpoint["global_step"]  # the checkpoint's step on: it is logged again

    def before_fit(self) -> None:
        """Record the run's config in every checkpoint; check that the monitored metrics are ones the model logs,
        and that a checkpoint to start from fits the model."""
        config = self.config[self.subcommand]
        check_precision(self.trainer)
        check_monitored(self.model, self.trainer, config, fitting=self.subcommand == "fit")
        self.model.training_config = self._parser(self.subcommand).dump(config, skip_none=False)
        checkpoint, self._checkpoint = self._checkpoint, None
        if checkpoint is not None:
            try:
                check_fits(checkpoint["state_dict"], self.model, config.ckpt_path)
                check_same_data(checkpoint, self.model.hparams["vocab"], config.ckpt_path)
            except CheckpointError as error:  # name the options that decide the vocabularies, if the fit's differ
                raise CheckpointError(f"{error}{options_of_its_fit(checkpoint, config)}") from None

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        """Validate and test the best checkpoint and report their metrics; one line where the run ended before any
        validation logged the metric that picks it, so that there is none."""
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
        if self.trainer.interrupted:
            return
        if best is None and checkpoint is not None and checkpoint.monitor not in self.trainer.callback_metrics:
            raise ValueError(never_validated(self.trainer, checkpoint.monitor))
        if best is None:
            return
        metrics = self.trainer.validate(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)[0]
        if self.test_after_fit and self.datamodule.has_test:
            metrics |= self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best, verbose=False)[0]
        self.report(metrics, f"best checkpoint: {best}")

    def after_validate(self) -> None:
        self.report(self.trainer.callback_metrics)

    def after_test(self) -> None:
        self.report(self.trainer.callback_metrics)

    def before_predict(self) -> None:
        self.before_fit()
        print(f"Predicting the {self.datamodule.predict_split} split (--data.predict_file, else the test split)")
        # the records beside the run's logs, in input order: what seqmodels-predict writes
        self.predictions = PredictionsWriter(Path(self.trainer.log_dir or ".") / "predictions.jsonl")
        self.trainer.callbacks.append(self.predictions)

    def after_predict(self) -> None:
        print(f"Predictions: {self.predictions.path}")

    def report(self, metrics: dict, heading: str = "") -> None:
        """Print the val/test metrics as a table, write them as JSON beside the run's logs, and log them with
        the hyperparameters to TensorBoard."""
        metrics = {k: float(v) for k, v in metrics.items() if k.startswith(("val/", "val_raw/", "test/"))}
        logger = self.trainer.logger
        if logger is not None and logger.log_dir and self.trainer.is_global_zero:
            Path(logger.log_dir).mkdir(parents=True, exist_ok=True)
            (Path(logger.log_dir) / f"metrics_{self.subcommand}.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if isinstance(logger, TensorBoardLogger) and self.trainer.is_global_zero:
            params = run_hparams(self.config[self.subcommand])
            logger.log_hyperparams(params, metrics={f"hparams/{k}": v for k, v in metrics.items()})
            save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", logger.hparams)  # replace Lightning's empty one
            logger.experiment.flush()  # fit has already finalized the logger: nothing else writes these out
        if self.trainer.is_global_zero:
            print(format_metrics(metrics, heading))
            if logger is not None:
                print(f"TensorBoard: tensorboard --logdir {Path(logger.save_dir or 'logs')}")


HEAD_KEYS = (*NAMED_HEADS, "heads")  # SequenceModel's head arguments


def head_fields(*configs: dict | None) -> dict[str, dict[str, Any]] | None:
    """What each of the model's heads reads, by name, from its head arguments; None while they are refused (the link's
    error would wrap the refusal: :meth:`SeqModelsCLI.before_instantiate_classes` gives it in one line)."""
    *named, heads = configs
    try:
        instances = head_configs(heads, **dict(zip(HEAD_KEYS, named)))
    except ValueError:
        return None
    return {name: asdict(head_field(name, config)) for name, config in instances.items()}  # plain: jsonargparse's


def resolved_config(train_args: Sequence[str], config_dir: Path | None = None) -> dict[str, Any]:
    """The config ``train.py fit ARGS`` would run (its ``--print_config``), as a dict."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["fit", *train_args, "--print_config"], config_dir)
    return yaml.safe_load(out.getvalue())


def main(
    args: Sequence[str] | None = None,
    config_dir: Path | None = None,
    cli_class: type[SeqModelsCLI] | None = None,
    callbacks: Sequence[Callback] = (),
) -> SeqModelsCLI:
    """Run the CLI; with no arguments, ``fit --config <config_dir>/default.yaml``. ``cli_class`` and
    ``callbacks`` (added to the config's) are for programs that run training, such as the tuner.

    Bad input (data, config, files, checkpoints) and a non-finite loss end the run with one line on stderr
    and exit status 1; ``--debug`` anywhere in the arguments, or ``SEQMODELS_DEBUG=1``, shows the traceback.
    """
    config_dir = config_dir or CONFIG_DIR
    argv = list(sys.argv[1:] if args is None else args)
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    if not argv:
        args = ["fit", "--config", str(config_dir / "default.yaml")]
    elif args is None:
        sys.argv[1:] = argv  # LightningCLI reads the command line itself (and warns when also given args)
    else:
        args = argv
    # allow_abbrev=False: --trainer.max_epoch is an error (naming max_epochs), not a silent abbreviation.
    base = {"default_config_files": [str(config_dir / "base.yaml")], "allow_abbrev": False}
    try:
        with warnings.catch_warnings():
            # Given args, LightningCLI warns whenever sys.argv has some too (the tuner's, pytest's): it reads only args.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended", category=UserWarning)
            quiet_lightning()
            show_project_notices()
            return (cli_class or SeqModelsCLI)(
                SequenceModel,
                SequenceDataModule,
                args=args,  # None: sys.argv
                trainer_defaults={"callbacks": list(callbacks)},
                parser_kwargs={"allow_abbrev": False} | {subcommand: base for subcommand in SUBCOMMANDS},
                parser_class=ShortErrorParser,
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
            )
    except USER_ERRORS as error:
        if debugging():
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        sys.stderr.write(f"{Path(sys.argv[0]).name}: error: {message} (--debug for the traceback)\n")
        raise SystemExit(1) from None
