"""The evaluation report: per-class scores and the most confused classes from a confusion matrix, example sentences
with their errors marked, and what EvaluationReport writes to TensorBoard at the end of a validation. (The weight
averaging callback is tested in test_averaging.py.)"""

import lightning as L
import torch
from helpers import random_examples
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray
from torch.utils.data import DataLoader

from seqmodels.callbacks import EvaluationReport, examples_markdown, most_confused, per_class_table
from seqmodels.data.batching import PadCollator
from seqmodels.models.heads.classifier import ClassificationHead
from seqmodels.models.heads.tagger import TaggingHead
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.padding import IGNORE_INDEX

CLASSES = ["DET", "NOUN", "VERB", "ADJ"]
MATRIX = torch.tensor([[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])  # rows: gold, columns: predicted


def test_per_class_table_gives_precision_recall_f1_and_support():
    assert per_class_table(MATRIX, CLASSES).splitlines() == [
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
        "| DET | 0.714 | 0.833 | 0.769 | 6 |",  # right 5 times of 7 predicted, of 6 gold
        "| NOUN | 0.750 | 0.500 | 0.600 | 6 |",  # 3 of 4, of 6
        "| VERB | 0.800 | 1.000 | 0.889 | 4 |",  # 4 of 5, of 4
        "| ADJ | 0.000 | 0.000 | 0.000 | 0 |",  # never predicted, never gold: zeros, not a division by zero
    ]


def test_most_confused_keeps_the_classes_with_the_most_errors_in_class_order():
    # Errors as gold plus errors as predicted: DET 1 + 2, NOUN 3 + 1, VERB 0 + 1, ADJ 0 + 0.
    assert most_confused(MATRIX, 2) == [0, 1]  # NOUN has more errors than DET, but the classes keep their order
    assert most_confused(MATRIX, 3) == [0, 1, 2]
    assert most_confused(MATRIX, 4) == [0, 1, 2, 3]


def test_examples_mark_tagging_errors_and_show_the_classifier_line():
    """Each example as its heads render it: the tagger's words with errors in bold, then the classifier's line; an
    example without a per-token line starts with the sentence itself, escaped for Markdown."""
    tagger, classifier = TaggingHead(4, CLASSES), ClassificationHead(4, ["negative", "positive"])
    tokens = ["the", "film", "runs", "*"]
    tags = tagger.render_example(tokens, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 2, 3]), torch.zeros(4, 4))
    wrong = classifier.render_example(tokens, torch.tensor(1), torch.tensor(0), torch.tensor([0.7, 0.3]))
    right = classifier.render_example(["so", "dull", "!"], torch.tensor(0), torch.tensor(0), torch.tensor([0.9, 0.1]))
    shown = [{"tokens": tokens, "lines": [tags, wrong], "per_token": True},
             {"tokens": ["so", "dull", "!"], "lines": [right], "per_token": False}]  # fmt: skip
    assert examples_markdown(shown) == (
        "the/DET **film/NOUN→VERB** runs/VERB \\*/ADJ  \n"
        "gold: positive, predicted: negative (p=0.70) **✗**\n\n"
        "so dull \\!  \n"
        "gold: negative, predicted: negative (p=0.90)"
    )


def tagger_counts(model: SequenceModel, loader: DataLoader) -> torch.Tensor:
    """The tagger's confusion matrix (rows: gold, columns: predicted) on the loader's real tokens, counted here."""
    size = len(model.heads["tagger"].classes)
    counts = torch.zeros(size, size, dtype=torch.long)
    model.eval()  # as in validation: no dropout
    with torch.no_grad():
        for batch in loader:
            scores = model(batch["token_ids"], batch["lengths"])["tagger"]
            predicted = model.heads["tagger"].predict(scores, batch["lengths"])
            real = batch["targets"]["tagger"] != IGNORE_INDEX
            for gold, tag in zip(batch["targets"]["tagger"][real].tolist(), predicted[real].tolist()):
                counts[gold, tag] += 1
    return counts


def test_the_report_writes_figures_tables_examples_and_a_pr_curve_to_tensorboard(tmp_path, make_model):
    model = make_model()  # a tagger and a binary classifier
    loader = DataLoader(random_examples(24), batch_size=8, collate_fn=PadCollator())
    logger = TensorBoardLogger(tmp_path, name="report")
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[EvaluationReport(examples=2)],
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.validate(model, loader, verbose=False)

    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    for head in ("tagger", "classifier"):
        assert events.Images(f"val/{head}/confusion_matrix")[-1].encoded_image_string.startswith(b"\x89PNG")
    text = {tag: events.Tensors(tag)[-1].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]
            if tag.endswith("/text_summary")}  # fmt: skip
    expected = per_class_table(tagger_counts(model, loader), model.heads["tagger"].classes)
    assert text["val/tagger/per_class/text_summary"] == expected
    examples = text["val/examples/text_summary"].split("\n\n")
    assert len(examples) == 2
    for example in examples:
        tags, label = example.split("  \n")
        assert all("/" in word for word in tags.split(" ")) and label.startswith("gold: ")
    assert "→" in text["val/examples/text_summary"]  # an untrained tagger errs: marked in bold

    assert "val/tagger/pr_curve" not in events.Tags()["tensors"]  # binary classifiers only
    true_positives, false_positives = make_ndarray(events.Tensors("val/classifier/pr_curve")[-1].tensor_proto)[:2, 0]
    assert true_positives + false_positives == 24  # at threshold 0 every sentence of every batch counts as positive
