"""The project's Lightning callbacks: :class:`EvaluationReport` writes to TensorBoard *where* the model goes wrong, at
the end of each validation and test epoch (confusion matrices, per-class precision/recall/F1, example predictions,
a precision-recall curve for binary classification, and, off by default, weight and gradient histograms);
:class:`PlainProgress` prints progress as lines; :class:`PredictionsWriter` writes ``train.py predict``'s records.
"""

from __future__ import annotations

import json
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from seqmodels.averaging import ExponentialMovingAverage  # configs name it seqmodels.callbacks.ExponentialMovingAverage
from seqmodels.models.heads.base import markdown_escape
from seqmodels.padding import IGNORE_INDEX

matplotlib.use("Agg")  # no display: render to arrays
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["EvaluationReport", "ExponentialMovingAverage", "PlainProgress", "PredictionsWriter"]


class EvaluationReport(L.Callback):
    """Per head: a confusion matrix figure, a per-class table, example predictions; PR curve for 2 classes.

    Args:
        confusion_matrix: a row-normalised confusion matrix figure per head.
        per_class: a markdown table of per-class precision, recall, F1 and support.
        examples: how many example sentences to show (0: none), with errors marked.
        pr_curve: a precision-recall curve for a binary classifier.
        histograms: weight and gradient histograms, once per training epoch.
        max_classes: larger tag sets show only the ``max_classes`` most confused classes.
    """

    def __init__(
        self,
        confusion_matrix: bool = True,
        per_class: bool = True,
        examples: int = 5,
        pr_curve: bool = True,
        histograms: bool = False,
        max_classes: int = 20,
    ) -> None:
        self.confusion_matrix, self.per_class, self.examples = confusion_matrix, per_class, examples
        self.pr_curve, self.histograms, self.max_classes = pr_curve, histograms, max_classes
        self._reset()

    def _reset(self) -> None:
        self.counts: dict[str, Tensor] = {}  # head -> (C, C) counts, rows = gold, columns = predicted
        self.binary: dict[str, list[tuple[Tensor, Tensor]]] = {}  # head -> (gold, P(positive)) per batch
        self.shown: list[dict[str, Any]] = []

    # -- collecting ------------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        for name, preds in outputs["preds"].items():
            head = pl_module.heads[name]
            targets = head.targets(batch)
            if head.confusion_report:
                real = targets != IGNORE_INDEX
                size = len(head.classes)
                pairs = targets[real] * size + preds[real]  # one id per (gold, predicted) pair
                counts = torch.bincount(pairs, minlength=size**2).view(size, size).cpu()
                self.counts[name] = self.counts.get(name, 0) + counts
            positive = head.positive_scores(outputs["probs"][name])
            if positive is not None:
                self.binary.setdefault(name, []).append((targets.cpu(), positive.float().cpu()))
        num_batches = (trainer.num_test_batches if trainer.testing else trainer.num_val_batches)[dataloader_idx]
        if self.examples and batch_idx % max(1, int(num_batches) // self.examples) == 0:
            self._keep_example(pl_module, outputs, batch)

    on_test_batch_end = on_validation_batch_end

    def _keep_example(self, pl_module: L.LightningModule, outputs: dict, batch: dict[str, Any]) -> None:
        """One sentence of this batch (batches are spread over the epoch): the one with the most errors, as each
        head renders it."""
        if len(self.shown) >= self.examples or not outputs["preds"]:
            return
        errors = torch.zeros(len(batch["lengths"]), device=batch["token_ids"].device)  # (B,)
        for name, preds in outputs["preds"].items():
            targets = pl_module.heads[name].targets(batch)
            wrong = (preds != targets) & (targets != IGNORE_INDEX)  # (B, T) or (B,)
            errors += wrong.flatten(1).sum(1) if wrong.dim() > 1 else wrong
        row = int(errors.argmax())
        length = int(batch["lengths"][row])
        if "tokens" in batch:
            tokens = batch["tokens"][row]
        else:
            tokens = pl_module.vocabularies["tokens"].decode(batch["token_ids"][row, :length].tolist())
        example: dict[str, Any] = {"tokens": tokens, "lines": [], "per_token": False}
        for name, preds in outputs["preds"].items():
            head, probs = pl_module.heads[name], outputs["probs"][name]
            targets = head.targets(batch)
            per_token = targets.dim() > 1  # (B, T): each row cut to the sentence's length

            def cut(values: Tensor, per_token: bool = per_token) -> Tensor:
                return values[row, :length] if per_token else values[row]

            line = head.render_example(tokens, cut(targets), cut(preds), None if probs is None else cut(probs))
            example["per_token"] |= per_token and bool(line)
            example["lines"] += [line] if line else []
        self.shown.append(example)

    # -- writing ---------------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module, "test" if trainer.testing else "val")

    on_test_epoch_end = on_validation_epoch_end

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        reduce = trainer.strategy.reduce  # sums each process's counts under DDP; every rank calls it for every head
        counts = {}
        for name, head in pl_module.heads.items() if self.confusion_matrix or self.per_class else ():
            if head.confusion_report:
                size = len(head.classes)
                mine = self.counts.get(name, torch.zeros(size, size, dtype=torch.long))  # none on this rank
                counts[name] = reduce(mine.to(pl_module.device), reduce_op="sum").cpu()
        counts = {name: matrix for name, matrix in counts.items() if matrix.sum() > 0}  # heads with targets somewhere
        writer = _tensorboard(trainer)
        if writer is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        step = trainer.global_step
        for name, matrix in counts.items():
            classes = pl_module.heads[name].classes
            if self.confusion_matrix:
                writer.add_figure(f"{stage}/{name}/confusion_matrix", self._figure(matrix, classes, name), step)
            if self.per_class:
                writer.add_text(f"{stage}/{name}/per_class", per_class_table(matrix, classes), step)
        for name, pairs in self.binary.items() if self.pr_curve else ():
            labels, probs = (torch.cat(t) for t in zip(*pairs))
            writer.add_pr_curve(f"{stage}/{name}/pr_curve", labels, probs, step)
        if self.shown:
            writer.add_text(f"{stage}/examples", examples_markdown(self.shown), step)

    def _figure(self, matrix: Tensor, classes: list[str], head: str) -> plt.Figure:
        """Row-normalised (recall per gold class); for large tag sets, the most confused classes only."""
        keep = most_confused(matrix, self.max_classes)
        shown = matrix[keep][:, keep].float()
        normalised = shown / shown.sum(1, keepdim=True).clamp(min=1)
        size = 2 + 0.45 * len(keep)
        figure, axes = plt.subplots(figsize=(size + 1.5, size))
        image = axes.imshow(normalised.numpy(), cmap="Blues", vmin=0, vmax=1)
        names = [classes[i] for i in keep]
        axes.set_xticks(range(len(names)), names, rotation=90)
        axes.set_yticks(range(len(names)), names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("gold")
        subset = "" if len(keep) == len(classes) else f" ({len(keep)} most confused of {len(classes)})"
        axes.set_title(f"{head}: share of each gold class{subset}")
        if len(keep) <= 20:
            for i in range(len(keep)):
                for j in range(len(keep)):
                    value = normalised[i, j].item()
                    if value >= 0.005:
                        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                                  color="white" if value > 0.5 else "black")
        figure.colorbar(image, ax=axes, fraction=0.046)
        figure.tight_layout()
        return figure

    # -- histograms ------------------------------------------------------------------------------
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        writer = _tensorboard(trainer)
        if not self.histograms or writer is None or trainer.fit_loop.epoch_loop.batch_progress.current.ready != 1:
            return  # once per epoch, at its first step
        for name, parameter in pl_module.named_parameters():
            writer.add_histogram(f"weights/{name}", parameter.detach().float().cpu(), trainer.global_step)
            if parameter.grad is not None:
                writer.add_histogram(f"gradients/{name}", parameter.grad.detach().float().cpu(), trainer.global_step)
                writer.add_scalar(f"gradient_norm/{name}", parameter.grad.norm().item(), trainer.global_step)


class PlainProgress(ProgressBar):
    """Progress as plain lines, for output that is not a terminal (a log file, CI): a line every
    ``every_seconds`` of training and one per validation, where a bar redrawn with carriage returns would
    write thousands of lines. The CLI uses it instead of Lightning's bar when stdout is not a terminal."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self._enabled = True
        self._epoch_start = self._last_line = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, message: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(message, flush=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._last_line = time.monotonic()

    on_train_start = on_train_epoch_start  # a run resumed inside an epoch does not start that epoch again

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self._last_line >= self.every_seconds:
            self._last_line = now
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float("nan")
            total = self.total_train_batches
            self._print(f"epoch {trainer.current_epoch} batch {batch_idx + 1}/{total}: loss {loss:.4f}, "
                        f"{now - self._epoch_start:.0f} s")  # fmt: skip

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        seconds = time.monotonic() - self._epoch_start
        self._print(f"epoch {trainer.current_epoch} validated after {seconds:.0f} s: {shown}")


class PredictionsWriter(BasePredictionWriter):
    """``train.py predict``'s records as JSON Lines at ``path``, one per sentence in input order (corpus after
    corpus), though the batches run sorted by length: Lightning gives each batch's dataset indices."""

    def __init__(self, path: Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions: list, batch_indices: list) -> None:
        (indices,) = batch_indices  # the data module's one predict loader: every corpus, one after another
        records = [record for batch in predictions for record in batch]
        positions = [i for batch in indices for i in batch]  # each record's index in the input
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8") as out:
            in_order = sorted(zip(positions, records), key=itemgetter(0))
            out.writelines(json.dumps(record) + "\n" for _, record in in_order)


def _tensorboard(trainer: L.Trainer):
    """The TensorBoard SummaryWriter, or None when the run logs elsewhere."""
    return trainer.logger.experiment if isinstance(trainer.logger, TensorBoardLogger) else None


def most_confused(matrix: Tensor, limit: int) -> list[int]:
    """The indices of up to ``limit`` classes with the most errors (gold or predicted), in class order."""
    if len(matrix) <= limit:
        return list(range(len(matrix)))
    errors = matrix.clone().fill_diagonal_(0)
    return sorted(torch.topk(errors.sum(0) + errors.sum(1), limit).indices.tolist())


def per_class_table(matrix: Tensor, classes: list[str]) -> str:
    """A markdown table: precision, recall, F1 and support of each class, from a confusion matrix."""
    correct, predicted, gold = matrix.diag().float(), matrix.sum(0).float(), matrix.sum(1).float()
    precision, recall = correct / predicted.clamp(min=1), correct / gold.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for i, name in enumerate(classes):
        rows.append(f"| {name} | {precision[i]:.3f} | {recall[i]:.3f} | {f1[i]:.3f} | {int(gold[i])} |")
    return "\n".join(rows)


def examples_markdown(examples: list[dict[str, Any]]) -> str:
    """Each example as its heads render it (tags inline, errors in bold; the label with its probability), after
    the plain sentence when no head shows its words."""
    parts = []
    for example in examples:
        lines = [] if example["per_token"] else [" ".join(map(markdown_escape, example["tokens"]))]
        parts.append("  \n".join(lines + example["lines"]))
    return "\n\n".join(parts)
