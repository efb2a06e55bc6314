"""Adversarial training: the step moves each sentence's input by epsilon along the loss gradient, which raises
the loss by about epsilon times the gradient's norm; it adds a loss in training and changes nothing at evaluation."""

import copy

import lightning as L
import pytest
import torch
from helpers import random_examples
from torch.utils.data import DataLoader

from seqmodels.data.batching import PadCollator
from seqmodels.models.adversarial import changed_inputs, clean_and_adversarial

HEADS = {"tagger": {}, "classifier": {}}


def a_batch(n: int = 6) -> dict:
    return PadCollator(pad_id=0)(random_examples(n))


def test_the_perturbation_raises_the_loss_by_epsilon_times_each_sentences_gradient_norm(make_model):
    """To first order, moving sentence b's input by epsilon * g_b / |g_b| raises the loss by epsilon * |g_b|."""
    model, batch = make_model(**HEADS).train(), a_batch()
    for module in model.modules():  # no dropout: both passes see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    features = []
    with changed_inputs(model.encoder, lambda x: features.append(x) or x):
        clean = model.losses_and_predictions(batch, "train")["loss"]
    (gradient,) = torch.autograd.grad(clean, features)  # (B, T, E')
    epsilon = 1e-3
    step, perturbed = clean_and_adversarial(lambda: model.losses_and_predictions(batch, "train"), model.encoder,
                                            epsilon)  # fmt: skip
    torch.testing.assert_close(step["loss"], clean)
    expected_rise = epsilon * gradient.flatten(1).norm(dim=1).sum()
    torch.testing.assert_close(perturbed - clean, expected_rise, rtol=0.05, atol=0)
    assert perturbed > clean


def test_epsilon_zero_gives_the_clean_loss_and_the_hooks_are_gone_afterwards(make_model):
    model, batch = make_model(**HEADS).eval(), a_batch()  # eval: no dropout, the same loss twice
    step, perturbed = clean_and_adversarial(lambda: model.losses_and_predictions(batch, "train"), model.encoder, 0.0)
    assert torch.equal(perturbed, step["loss"])
    assert not model.encoder.input_dropout._forward_pre_hooks


def test_a_training_step_adds_the_adversarial_loss_and_evaluation_is_unchanged(make_model):
    """The same weights, with and without ``adversarial``: the training loss differs (clean + perturbed), and
    evaluation gives identical scores, twice in a row."""
    plain = make_model(**HEADS).train()
    adversarial = copy.deepcopy(plain)
    adversarial.adversarial = {"epsilon": 0.5}
    batch = a_batch()
    logged = {}
    for model in (plain, adversarial):
        model.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
        torch.manual_seed(0)
        loss = model.training_step(batch, 0)
        assert torch.isfinite(loss)
        logged[model is adversarial] = loss
    assert logged[True] > logged[False]  # clean (same dropout mask: same seed) + a perturbed loss
    torch.testing.assert_close(logged[True] - logged["train/adversarial/loss"], logged[False])
    with torch.no_grad():
        scores = [model.eval()(batch["token_ids"], batch["lengths"]) for model in (plain, adversarial, adversarial)]
    for name in HEADS:
        assert torch.equal(scores[0][name], scores[1][name]) and torch.equal(scores[1][name], scores[2][name])


def test_training_with_it_learns(make_model):
    model = make_model(**HEADS, adversarial={"epsilon": 0.3}, optimizer=lambda p: torch.optim.Adam(p, lr=0.03))
    loader = DataLoader(random_examples(48), batch_size=8, collate_fn=PadCollator(pad_id=0))

    def loss() -> float:
        with torch.no_grad():
            return sum(float(model.eval().losses_and_predictions(batch, "train")["loss"]) for batch in loader)

    before = loss()
    trainer = L.Trainer(accelerator="cpu", max_epochs=15, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, loader)
    assert loss() < 0.8 * before
    assert "train/adversarial/loss" in trainer.callback_metrics
    assert model.hparams.adversarial == {"epsilon": 0.3}  # kept in the checkpoint


def test_frozen_embeddings_still_get_a_direction(make_model):
    """With nothing before the LSTM learning, its input is a leaf: the step still finds the gradient there."""
    model = make_model(encoder={"freeze_embeddings": True}, **HEADS).train()
    step, perturbed = clean_and_adversarial(lambda: model.losses_and_predictions(a_batch(), "train"), model.encoder,
                                            0.5)  # fmt: skip
    assert torch.isfinite(perturbed) and perturbed.requires_grad


@pytest.mark.parametrize("config", [{"epsilon": -1.0}, {"epsilon": 0}, {}])
def test_an_epsilon_that_is_not_positive_is_refused(make_model, config):
    """A negative epsilon would move the input to a lower loss: the opposite of adversarial."""
    with pytest.raises(ValueError, match="model.adversarial.epsilon must be a number > 0"):
        make_model(**HEADS, adversarial=config)
