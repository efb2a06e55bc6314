"""The LightningModule: one LSTM encoder and one or more task heads on it.

- tagger:     ``tagger: {...}``, ``classifier: null``
- classifier: ``tagger: null``, ``classifier: {...}``
- multitask:  both; one encoder pass per batch, loss = the sum of each head's ``loss_weight * loss``
  (with several corpora, a batch adds the losses of the heads its corpus feeds);
- language model: ``lm: {...}``, alone or beside the others as an auxiliary loss.

Every head can also be given, under a name of its own, as ``heads: {NAME: {type: TYPE, column: COLUMN, ...}}``
(any registered type, :mod:`seqmodels.models.heads`): several taggers of one corpus, say UPOS, XPOS and FEATS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from jsonargparse.typing import PositiveFloat
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from seqmodels.checkpoints import KEY, complete_data_options, provenance, read_checkpoint, restore_rng
from seqmodels.data.vocab import PAD, from_lists
from seqmodels.models.adversarial import AdversarialConfig, checked, clean_and_adversarial
from seqmodels.models.encoder import EncoderConfig, LSTMEncoder
from seqmodels.data.fields import Field
from seqmodels.models.heads import build_head, head_configs, head_field
from seqmodels.models.heads.classifier import ClassifierConfig
from seqmodels.models.heads.lm import LMConfig
from seqmodels.models.heads.tagger import TaggerConfig
from seqmodels.models.loss_guard import LossGuard
from seqmodels.models.pretrained import (check_same_groups, check_same_reading, encoder_config, load_encoder,
                                         with_encoder_lr)
from seqmodels.models.step_logging import logs_step

EVAL_STAGES = ("val", "test")
NAMED_HEADS = ("tagger", "classifier", "lm")  # the 0.3 config keys: a head of that name and type each


class SequenceModel(L.LightningModule):
    """An :class:`~seqmodels.models.encoder.LSTMEncoder` with task heads.

    Args:
        vocab: ``tokens`` (and ``chars`` / ``cases`` when the encoder reads them) and each head's classes
            (named after the head), as lists of strings (index = id). Kept in the checkpoint's
            hyperparameters, so a checkpoint alone can predict.
        encoder: the encoder's sizes (see :class:`~seqmodels.models.encoder.EncoderConfig`).
        tagger: the tagging head's settings, or ``None`` for no tagger.
        classifier: the classification head's settings, or ``None`` for no classifier.
        lm: the language-model head's settings (a language model, or an auxiliary loss), or ``None``.
        heads: heads by name: ``type`` (a registered head type; by default the name), ``column`` (the corpus
            column it reads; by default its type's), ``unseen`` (``error`` or ``unknown``: a class training never
            had, at evaluation) and its type's settings.
        multitask_score: metrics (``tagger/acc``, ``classifier/acc``, ...) whose mean is logged as
            ``{stage}/multitask/score``, for choosing the best checkpoint of a multitask model.
        init_from: a checkpoint (say, a language model pretrained on raw text) whose encoder this one starts from,
            its sizes included (:mod:`seqmodels.models.pretrained`); the new checkpoints hold the weights, so they
            record ``None`` here.
        encoder_lr_factor: the encoder's learning rate as a fraction of the optimizer's (ULMFiT's discriminative one).
        adversarial: ``{epsilon: ...}``: train on the loss of the clean input plus that of the input moved by
            ``epsilon`` against the model (:mod:`seqmodels.models.adversarial`); ``train/adversarial/loss``.
        optimizer, lr_scheduler: built from the config (LightningCLI's dependency injection).
        initial_embeddings: pretrained word vectors, (len(vocab["tokens"]), embedding_dim), from the
            data module; only for a new model (a checkpoint has the trained ones).
        data_options: the data module's ``data_options`` (characters kept per word, lower-casing, where the
            tags came from); kept in the checkpoint, so that prediction reads and writes as training did.
    """

    def __init__(
        self,
        vocab: dict[str, list[str]],
        encoder: EncoderConfig | None = None,
        tagger: TaggerConfig | None = None,
        classifier: ClassifierConfig | None = None,
        lm: LMConfig | None = None,
        heads: dict[str, dict[str, Any]] | None = None,
        multitask_score: list[str] | None = None,
        init_from: str | None = None,
        encoder_lr_factor: PositiveFloat = 1.0,
        adversarial: AdversarialConfig | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        initial_embeddings: Tensor | None = None,
        data_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "initial_embeddings"], logger=False)
        self.hparams["data_options"] = complete_data_options(data_options, vocab)  # what the checkpoint records
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.training_config: str | None = None  # the run's full config (YAML), set by the CLI; kept in checkpoints
        self.vocabularies = from_lists(vocab)
        pretrained = read_checkpoint(init_from) if init_from is not None else None
        if pretrained is not None:
            check_same_reading(pretrained, vocab, self.hparams["data_options"], init_from)
            encoder = encoder_config(pretrained, encoder or {}, init_from)
            self.hparams.update(encoder=encoder, init_from=None)
        self.encoder = self._build_encoder(encoder or {}, initial_embeddings)
        if pretrained is not None:
            load_encoder(self.encoder, vocab, pretrained, init_from)
        configs = head_configs(tagger=tagger, classifier=classifier, lm=lm, heads=heads)
        self.fields: dict[str, Field] = {name: head_field(name, config) for name, config in configs.items()}
        self.multitask_score = multitask_score
        self.adversarial = checked(adversarial)
        self.loss_guard = LossGuard()  # a NaN loss stops training
        self.heads = nn.ModuleDict({name: build_head(name, config, self.fields[name], self.vocabularies, self.encoder)
                                    for name, config in configs.items()})  # fmt: skip
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({
                name: MetricCollection(head.metrics(), prefix=f"{stage}/{name}/") for name, head in self.heads.items()
            })
            for stage in EVAL_STAGES
        })
        # Evaluation losses as metrics too: every process then logs the same keys, whichever corpora it saw.
        self.eval_losses = nn.ModuleDict({stage: nn.ModuleDict({name: MeanMetric() for name in self.heads})
                                          for stage in EVAL_STAGES})  # fmt: skip

    def _build_encoder(self, config: EncoderConfig, initial_embeddings: Tensor | None) -> LSTMEncoder:
        """The encoder, sized by the vocabularies: a character CNN with ``chars``, a case feature with ``cases``."""
        if initial_embeddings is not None and initial_embeddings.size(1) != config.get("embedding_dim", 100):
            raise ValueError(f"the pretrained embeddings (data.pretrained_embeddings) have dimension "
                             f"{initial_embeddings.size(1)}, but model.encoder.embedding_dim is "
                             f"{config.get('embedding_dim', 100)}")  # fmt: skip
        tokens = self.vocabularies["tokens"]
        return LSTMEncoder(
            len(tokens),
            padding_idx=tokens.stoi[PAD],
            unk_idx=tokens.unk_id,
            num_chars=len(self.vocabularies["chars"]) if "chars" in self.vocabularies else 0,
            num_cases=len(self.vocabularies["cases"]) if "cases" in self.vocabularies else 0,
            pretrained=initial_embeddings,
            **config,
        )

    def forward(
        self, token_ids: Tensor, lengths: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``token_ids`` (B, T), ``lengths`` (B,) [, ``char_ids`` (B, T, W), ``case_ids`` (B, T)] -> each head's
        scores by name, e.g. tagger (B, T, tags), classifier (B, classes)."""
        encoded = self.encoder(token_ids, lengths, char_ids, case_ids)
        return {name: head(encoded) for name, head in self.heads.items()}

    def _scores(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self(batch["token_ids"], batch["lengths"], batch.get("char_ids"), batch.get("case_ids"))

    def losses_and_predictions(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        """Each loss of the heads the batch feeds and their weighted sum (``loss``); in evaluation also their
        predictions (and class probabilities), with the stage's metrics updated. A batch of each corpus (``data.step:
        every_corpus``) comes as ``{corpus: batch}``: one encoder pass each, the losses summed. Logs nothing (the
        weight averaging calls it on the raw weights too)."""
        parts = [batch] if "token_ids" in batch else list(batch.values())
        losses: dict[str, Tensor] = {}
        preds, probs = {}, {}
        for part in parts:
            scores = self._scores(part)
            for name, head in self.heads.items():
                targets = head.targets(part) if name in part.get("heads", self.heads) else None  # (B, T) or (B,)
                if targets is None:  # not this corpus's head: no loss on a missing target
                    continue
                losses[name] = losses.get(name, 0) + head.loss(scores[name], targets)
                if stage in EVAL_STAGES:
                    self.eval_losses[stage][name].update(losses[name].detach(), weight=len(part["lengths"]))
                    preds[name] = head.predict(scores[name], part["lengths"])  # shaped like targets
                    probs[name] = head.probabilities(scores[name])
                    head.update_metrics(self.metrics[stage][name], scores[name], preds[name], targets)
        batch_size = sum(len(part["lengths"]) for part in parts)
        loss = sum((self.heads[name].loss_weight * head_loss for name, head_loss in losses.items()),
                   torch.zeros((), device=self.device))  # fmt: skip
        return {"loss": loss, "losses": losses, "preds": preds, "probs": probs, "batch_size": batch_size}

    def _shared_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        """The weighted sum of the head losses, logged (in training each head's and ``adversarial``'s too, on the
        steps of :func:`logs_step`); in evaluation also the predictions and probabilities, for the report."""
        adversarial = stage == "train" and self.adversarial is not None
        if adversarial:
            compute = functools.partial(self.losses_and_predictions, batch, stage)
            step, perturbed = clean_and_adversarial(compute, self.encoder, **self.adversarial)
        else:
            step = self.losses_and_predictions(batch, stage)
        if stage != "train" or logs_step(self._trainer, self.global_step):
            extra = {"adversarial": perturbed} if adversarial else {}
            for name, head_loss in (step["losses"] | extra).items() if stage == "train" else ():
                self.log(f"train/{name}/loss", head_loss, batch_size=step["batch_size"])
            self.log(f"{stage}/loss", step["loss"], batch_size=step["batch_size"], sync_dist=stage != "train",
                     prog_bar=stage != "train" or self.device.type == "cpu")  # the bar reads it: a GPU sync
        loss = step["loss"] + perturbed if adversarial else step["loss"]
        return {"loss": loss, "preds": step["preds"], "probs": step["probs"]}

    def epoch_metrics(self, stage: str, reduce: Callable[..., Tensor]) -> dict[str, Tensor]:
        """Compute (synchronised across processes under DDP) and reset each head's metrics; then the mean of
        ``multitask_score``'s metrics as ``{stage}/multitask/score``. ``reduce`` is the strategy's (every process
        calls this)."""
        metrics: dict[str, Tensor] = {}
        for name in self.heads:
            loss, head_metrics = self.eval_losses[stage][name], self.metrics[stage][name]
            updated = torch.tensor(float(loss.update_called), device=self.device)
            if reduce(updated, reduce_op="sum") > 0:  # some process had targets for the head
                metrics |= head_metrics.compute() | {f"{stage}/{name}/loss": loss.compute()}
            head_metrics.reset()
            loss.reset()
        if self.multitask_score and all(f"{stage}/{name}" in metrics for name in self.multitask_score):
            score = torch.stack([metrics[f"{stage}/{name}"].float() for name in self.multitask_score]).mean()
            metrics[f"{stage}/multitask/score"] = score
        return metrics

    def _log_epoch_metrics(self, stage: str) -> None:
        # compute() gathers every process's state; sync_dist only keeps Lightning's bookkeeping quiet
        self.log_dict(self.epoch_metrics(stage, self.trainer.strategy.reduce), sync_dist=True)

    def metric_names(self, stage: str) -> set[str]:
        """Every metric this model logs in ``stage`` (``val``, ``test``), e.g. to check a monitored one exists."""
        names = {f"{stage}/loss", *(f"{stage}/{name}/loss" for name in self.heads)}
        for name, head in self.heads.items():
            for key, metric in head.metrics().items():
                names |= {f"{stage}/{name}/{output}" for output in getattr(metric, "output_keys", (key,))}
        return names | ({f"{stage}/multitask/score"} if self.multitask_score else set())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")["loss"]
        self.loss_guard.watch(loss, self.global_step, lambda: f"epoch {self.current_epoch}, batch {batch_idx}: "
                              f"{len(batch['lengths'])} sentences of lengths {batch['lengths'].tolist()}")
        return loss

    def on_validation_start(self) -> None:  # not on weights that a NaN loss ruined: see the loss guard
        self.loss_guard.read()

    on_train_end = on_validation_start

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._shared_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def decode(self, scores: dict[str, Tensor], batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Every head's JSON-ready fields for the batch scored, one dict per sentence (``tags``, ``label``, ...). A
        head writes only the ``fields`` it declares, which no other head shares (:func:`check_outputs`)."""
        records: list[dict[str, Any]] = [{} for _ in range(len(batch["lengths"]))]
        for name, head in self.heads.items():
            decoded = head.decode(scores[name], batch)
            undeclared = set().union(*decoded) - set(head.fields)
            if undeclared:
                raise ValueError(f"the {name} head decodes {sorted(undeclared)}, which its `fields` do not declare")
            for record, fields in zip(records, decoded):
                record.update(fields)
        return records

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """The records ``seqmodels-predict`` writes: ``tokens`` (when the batch has them) and every head's fields."""
        records = self.decode(self._scores(batch), batch)
        if "tokens" in batch:
            records = [{"tokens": tokens, **record} for tokens, record in zip(batch["tokens"], records)]
        return records

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the package version, the config and the RNG states (:func:`seqmodels.checkpoints.provenance`). Drop
        LightningCLI's ``_instantiator``: re-parsing it (type-checking every vocabulary entry) makes loading slow.
        First, a NaN loss that the guard has not read yet stops the run here, before the file is written."""
        self.loss_guard.read()
        checkpoint["hyper_parameters"].pop("_instantiator", None)
        checkpoint[KEY] = provenance(self.training_config)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """On resuming: the saving run's optimizer groups (:func:`check_same_groups`) and random numbers (dropout)."""
        if self._trainer is not None and self.trainer.state.fn == "fit":
            check_same_groups(checkpoint, self.hparams.encoder_lr_factor)
            if "rng" in checkpoint.get(KEY, {}):
                restore_rng(checkpoint[KEY]["rng"])

    def configure_optimizers(self) -> Any:
        optimizer = with_encoder_lr(self.optimizer, self, self.hparams.encoder_lr_factor)
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", "val/loss")
        return {"optimizer": optimizer, "lr_scheduler": config}

