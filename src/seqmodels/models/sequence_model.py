"""The LightningModule: one LSTM encoder, a tagging head, a classification head, or both.

- tagger:     ``tagger: {...}``, ``classifier: null``
- classifier: ``tagger: null``, ``classifier: {...}``
- multitask:  both; one encoder pass per batch, loss = sum of ``loss_weight * head loss``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from seqmodels.checkpoints import KEY, provenance, restore_rng
from seqmodels.data.batching import IGNORE_INDEX
from seqmodels.data.vocab import PAD, Vocabulary, from_lists
from seqmodels.encoder import EncoderConfig, LSTMEncoder
from seqmodels.metrics import SpanF1
from seqmodels.models.heads import (
    ClassificationHead,
    ClassifierConfig,
    TaggerConfig,
    TaggingHead,
    is_bio,
)

EVAL_STAGES = ("val", "test")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before that step's update."""


class SequenceModel(L.LightningModule):
    """An :class:`~seqmodels.encoder.LSTMEncoder` with a tagging head, a classification head, or both.

    Args:
        vocab: ``tokens`` and, per head, ``tags`` / ``labels``, as lists of strings (index = id).
            Kept in the checkpoint's hyperparameters, so a checkpoint alone can predict.
        encoder: the encoder's sizes (see :class:`~seqmodels.encoder.EncoderConfig`).
        tagger: the tagging head's settings, or ``None`` for no tagger.
        classifier: the classification head's settings, or ``None`` for no classifier.
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
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        initial_embeddings: Tensor | None = None,
        data_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "initial_embeddings"], logger=False)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.training_config: str | None = None  # the run's full config (YAML), set by the CLI; kept in checkpoints
        if tagger is None and classifier is None:
            raise ValueError("the model needs at least one head: set model.tagger and/or model.classifier")
        self.vocab = from_lists(vocab)
        self.encoder = self._build_encoder(encoder or {}, initial_embeddings)
        self.heads = nn.ModuleDict()
        self.loss_weights: dict[str, float] = {}
        if tagger is not None:
            tags = self._vocab_for("tags", "tagger").itos
            self.heads["tagger"] = TaggingHead(
                self.encoder.output_size, tags, tagger.get("dropout", 0.5), tagger.get("crf", False)
            )
            self.loss_weights["tagger"] = tagger.get("loss_weight", 1.0)
        if classifier is not None:
            labels = self._vocab_for("labels", "classifier").itos
            self.heads["classifier"] = ClassificationHead(
                self.encoder.output_size, labels, classifier.get("dropout", 0.5), classifier.get("hidden_size", 0)
            )
            self.loss_weights["classifier"] = classifier.get("loss_weight", 1.0)
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({name: self._head_metrics(name, stage) for name in self.heads})
                for stage in EVAL_STAGES
            }
        )

    def _build_encoder(self, config: EncoderConfig, initial_embeddings: Tensor | None) -> LSTMEncoder:
        """The encoder, sized by the vocabularies: a character CNN if there are ``chars``, a case feature if
        ``cases``."""
        if initial_embeddings is not None and initial_embeddings.size(1) != config.get("embedding_dim", 100):
            raise ValueError(
                f"the pretrained embeddings (data.pretrained_embeddings) have dimension {initial_embeddings.size(1)}, "
                f"but model.encoder.embedding_dim is {config.get('embedding_dim', 100)}"
            )
        tokens = self.vocab["tokens"]
        return LSTMEncoder(
            len(tokens),
            padding_idx=tokens.stoi[PAD],
            unk_idx=tokens.unk_id,
            num_chars=len(self.vocab["chars"]) if "chars" in self.vocab else 0,
            num_cases=len(self.vocab["cases"]) if "cases" in self.vocab else 0,
            pretrained=initial_embeddings,
            **config,
        )

    def _head_metrics(self, head: str, stage: str) -> MetricCollection:
        """Accuracy and macro F1 (and span P/R/F1 for BIO tags), logged as ``{stage}/{head}/{name}``.

        Targets equal to ``IGNORE_INDEX`` (padding) are left out of every metric.
        """
        classes = self.vocab["tags" if head == "tagger" else "labels"].itos
        metrics: dict[str, Metric] = {
            "acc": MulticlassAccuracy(len(classes), average="micro", ignore_index=IGNORE_INDEX),
            "f1_macro": MulticlassF1Score(len(classes), average="macro", ignore_index=IGNORE_INDEX),
        }
        if head == "tagger" and is_bio(classes):
            metrics["span"] = SpanF1(classes)
        return MetricCollection(metrics, prefix=f"{stage}/{head}/")

    def _vocab_for(self, name: str, head: str) -> Vocabulary:
        if name not in self.vocab:
            raise ValueError(f"the {head} head needs '{name}' in the vocabularies; the data has {list(self.vocab)}")
        return self.vocab[name]

    def forward(
        self, token_ids: Tensor, lengths: Tensor, char_ids: Tensor | None = None, case_ids: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``token_ids`` (B, T), ``lengths`` (B,) [, ``char_ids`` (B, T, W), ``case_ids`` (B, T)] -> each head's
        scores: tagger (B, T, tags), classifier (B, classes)."""
        encoded = self.encoder(token_ids, lengths, char_ids, case_ids)
        return {name: head(encoded) for name, head in self.heads.items()}

    def _scores(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self(batch["token_ids"], batch["lengths"], batch.get("char_ids"), batch.get("case_ids"))

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Any]:
        """The weighted loss; in evaluation also each head's predictions (and class probabilities) for callbacks."""
        batch_size = batch["token_ids"].size(0)
        scores = self._scores(batch)
        loss = torch.zeros((), device=batch["token_ids"].device)
        preds, probs = {}, {}
        for name, head in self.heads.items():
            targets = batch[head.target_key]  # (B, T) tags or (B,) labels
            head_loss = head.loss(scores[name], targets)
            loss = loss + self.loss_weights[name] * head_loss
            self.log(f"{stage}/{name}/loss", head_loss, batch_size=batch_size, sync_dist=stage != "train")
            if stage in EVAL_STAGES:
                preds[name] = head.predict(scores[name], batch["lengths"])  # (B, T) or (B,)
                probs[name] = scores[name].detach().softmax(-1)
                self.metrics[stage][name].update(preds[name], targets)
        self.log(f"{stage}/loss", loss, batch_size=batch_size, prog_bar=True, sync_dist=stage != "train")
        return {"loss": loss, "preds": preds, "probs": probs}

    def _log_epoch_metrics(self, stage: str) -> None:
        """Compute (synchronised across processes under DDP), log and reset each head's metrics."""
        for collection in self.metrics[stage].values():
            # compute() already gathers every process's state; sync_dist only keeps Lightning's bookkeeping quiet
            self.log_dict(collection.compute(), sync_dist=True)
            collection.reset()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")["loss"]
        if not torch.isfinite(loss):  # stop before the update: the checkpoints on disk stay good
            raise NonFiniteLossError(
                f"the training loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}: {len(batch['lengths'])} sentences of lengths {batch['lengths'].tolist()}); "
                "stopped before updating the weights: the last checkpoint is from a good step"
            )
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any]:
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any]:
        return self._shared_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> list[dict[str, Any]]:
        """Decoded predictions, one dict per sentence: ``tokens`` (when the batch has them), ``tags`` and/or
        ``label`` with ``label_probs``."""
        scores = self._scores(batch)
        lengths = batch["lengths"].tolist()
        tokens = batch.get("tokens") or [None] * len(lengths)
        results: list[dict[str, Any]] = [{"tokens": t} if t is not None else {} for t in tokens]
        if "tagger" in scores:
            tag_ids = self.heads["tagger"].predict(scores["tagger"], batch["lengths"]).cpu()  # (B, T)
            for result, ids, n in zip(results, tag_ids, lengths):
                result["tags"] = self.vocab["tags"].decode(ids[:n].tolist())
        if "classifier" in scores:
            probs = scores["classifier"].softmax(-1).cpu()  # (B, classes)
            for result, p in zip(results, probs):
                result["label"] = self.vocab["labels"].itos[int(p.argmax())]
                result["label_probs"] = dict(zip(self.vocab["labels"].itos, p.tolist()))
        return results

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the package version, the config and the RNG states (:func:`seqmodels.checkpoints.provenance`).

        Drop LightningCLI's ``_instantiator``: the plain hyperparameters rebuild the model, and re-parsing
        them through the CLI (type-checking every vocabulary entry) makes loading take a minute."""
        checkpoint["hyper_parameters"].pop("_instantiator", None)
        checkpoint[KEY] = provenance(self.training_config)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """When training resumes, draw the same random numbers (dropout) as the run that saved the checkpoint."""
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if fitting and "rng" in checkpoint.get(KEY, {}):
            restore_rng(checkpoint[KEY]["rng"])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        config: dict[str, Any] = {"scheduler": scheduler}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", "val/loss")
        return {"optimizer": optimizer, "lr_scheduler": config}
