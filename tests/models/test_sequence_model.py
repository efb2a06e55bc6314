"""The LightningModule: padding-free loss and metrics, heads, and a checkpoint that predicts alone."""

import lightning as L
import pytest
import torch
from helpers import VOCAB, random_examples
from torch.utils.data import DataLoader

from seqmodels.data.batching import PadCollator
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.padding import IGNORE_INDEX

ENCODER = {"num_layers": 2, "bidirectional": True, "dropout": 0.1}  # over helpers.SIZES


class PadFurther(PadCollator):
    """Pads every batch with ``extra`` more positions than it needs."""

    def __init__(self, extra: int) -> None:
        super().__init__(pad_id=0)
        self.extra = extra

    def __call__(self, examples):
        batch = super().__call__(examples)
        batch["token_ids"] = torch.nn.functional.pad(batch["token_ids"], (0, self.extra), value=0)
        batch["targets"]["tagger"] = torch.nn.functional.pad(batch["targets"]["tagger"], (0, self.extra), value=IGNORE_INDEX)
        return batch


def quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU trainer that logs, draws and summarises nothing."""
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_loss_and_metrics_ignore_padding(make_model):
    model = make_model(encoder=ENCODER)
    examples = random_examples()
    results = [
        quiet_trainer().validate(model, DataLoader(examples, batch_size=8, collate_fn=collate), verbose=False)[0]
        for collate in (PadCollator(), PadFurther(extra=9))
    ]
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-6), key

    # Tagger accuracy by hand, over real tokens only.
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for ex in examples:
            logits = model(torch.tensor([ex["token_ids"]]), torch.tensor([len(ex["token_ids"])]))["tagger"]
            correct += (logits[0].argmax(-1) == torch.tensor(ex["tagger"])).sum().item()
            total += len(ex["tagger"])
    assert results[0]["val/tagger/acc"] == pytest.approx(correct / total, abs=1e-6)


def test_metric_names(make_model):
    metrics = quiet_trainer().test(make_model(encoder=ENCODER), DataLoader(random_examples(8), batch_size=4, collate_fn=PadCollator()), verbose=False)[0]
    for name in ("test/loss", "test/tagger/acc", "test/tagger/f1_macro", "test/classifier/acc", "test/classifier/f1_macro"):
        assert name in metrics


def test_single_head_models(make_model):
    batch = PadCollator()(random_examples(4))
    tagger = make_model(encoder=ENCODER, tagger={"dropout": 0.1})
    classifier = make_model(encoder=ENCODER, classifier={"hidden_size": 16})
    assert set(tagger(batch["token_ids"], batch["lengths"])) == {"tagger"}
    logits = classifier(batch["token_ids"], batch["lengths"])["classifier"]
    assert logits.shape == (4, 2)
    with pytest.raises(ValueError, match="at least one head"):
        SequenceModel(VOCAB, encoder=ENCODER)
    with pytest.raises(ValueError, match="the tagger head needs its classes"):
        SequenceModel({"tokens": VOCAB["tokens"]}, tagger={})


def test_multitask_loss_is_the_weighted_sum(make_model):
    batch = PadCollator()(random_examples(6))
    heads = {"tagger": {"dropout": 0.0, "loss_weight": 0.3}, "classifier": {"dropout": 0.0, "loss_weight": 2.0}}
    model = make_model(encoder=ENCODER, **heads)
    logged = {}
    model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    loss = model.training_step(batch, 0)
    expected = 0.3 * logged["train/tagger/loss"] + 2.0 * logged["train/classifier/loss"]
    torch.testing.assert_close(loss, expected)


def test_checkpoint_alone_predicts_identically(tmp_path, make_model):
    model = make_model(encoder=ENCODER)
    loader = DataLoader(random_examples(), batch_size=8, collate_fn=PadCollator())
    trainer = quiet_trainer(max_epochs=1, default_root_dir=tmp_path, enable_checkpointing=True)
    trainer.fit(model, loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    checkpoint = torch.load(path, weights_only=True)  # no pickled custom objects
    assert checkpoint["hyper_parameters"]["vocab"] == {name: VOCAB[name] for name in ("tokens", "tags", "labels")}

    restored = SequenceModel.load_from_checkpoint(path, weights_only=True).eval()
    batch = PadCollator()(random_examples(5, seed=1))
    model.eval()
    assert model.predict_step(batch, 0) == restored.predict_step(batch, 0)
    assert restored.vocabularies["tokens"].encode(["film", "never-seen"]) == [VOCAB["tokens"].index("film"), 1]


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_mixed_precision_trains_with_a_crf_and_a_classifier(make_model, precision):
    """CPU autocast stands in for a GPU's: the heads run in bfloat16, the losses (the CRF's too) in float32."""
    model = make_model(encoder=ENCODER, tagger={"crf": True}, classifier={})
    loader = DataLoader(random_examples(), batch_size=8, collate_fn=PadCollator())
    trainer = quiet_trainer(precision=precision, max_epochs=1, num_sanity_val_steps=0, enable_checkpointing=False)
    trainer.fit(model, loader, loader)
    assert all(torch.isfinite(v) for k, v in trainer.callback_metrics.items()), trainer.callback_metrics
    assert {"val/tagger/acc", "val/classifier/acc"} <= trainer.callback_metrics.keys()
    batch = next(iter(loader))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
        scores = model(batch["token_ids"], batch["lengths"])
        losses = [head.loss(scores[name], head.targets(batch)) for name, head in model.heads.items()]
    expected = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    assert scores["tagger"].dtype == scores["classifier"].dtype == expected
    assert all(loss.dtype == torch.float32 for loss in losses)
