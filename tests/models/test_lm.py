"""The language-model head: no state sees the word it predicts, targets are the neighbours, rare words are <unk>,
and it learns (perplexity falls) alone or beside a tagger."""

import copy
import functools
import random

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from seqmodels.data.batching import PadCollator
from seqmodels.data.vocab import PAD, UNK
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.padding import IGNORE_INDEX

WORDS = [f"w{i}" for i in range(30)]
VOCAB = {"tokens": [PAD, UNK, *WORDS], "tags": ["A", "B"]}
SIZES = {"embedding_dim": 8, "hidden_size": 6}


def lm_model(**encoder) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(VOCAB, encoder=SIZES | encoder, lm={"vocab_size": 20, "dropout": 0.0}).eval()


@pytest.mark.parametrize(
    ("bidirectional", "num_layers", "separate"),
    [(True, 1, False), (False, 1, False), (False, 3, False), (True, 1, True), (True, 2, True), (True, 3, True)],
)
def test_no_state_sees_the_word_it_predicts(bidirectional, num_layers, separate):
    """Changing token t+1 leaves the forward prediction at t alone; changing token t-1, the backward one.
    Changing token t itself does change both: the states do read up to the word before the one predicted.
    With ``separate_directions``, this holds at any depth."""
    model = lm_model(bidirectional=bidirectional, num_layers=num_layers, separate_directions=separate)
    token_ids, lengths = torch.randint(2, len(VOCAB["tokens"]), (1, 9)), torch.tensor([9])
    with torch.no_grad():
        base = model(token_ids, lengths)["lm"]  # (1, T, D, V)
    assert base.shape == (1, 9, 2 if bidirectional else 1, 21)  # 20 words + <unk>
    for t in range(1, 8):
        with torch.no_grad():
            after = model(perturbed(token_ids, t + 1), lengths)["lm"]
            before = model(perturbed(token_ids, t - 1), lengths)["lm"]
            itself = model(perturbed(token_ids, t), lengths)["lm"]
        assert torch.equal(after[0, t, 0], base[0, t, 0])  # forward at t has not read t+1
        assert not torch.equal(itself[0, t, 0], base[0, t, 0])
        if bidirectional:
            assert torch.equal(before[0, t, 1], base[0, t, 1])  # backward at t has not read t-1
            assert not torch.equal(itself[0, t, 1], base[0, t, 1])


def perturbed(token_ids: torch.Tensor, position: int) -> torch.Tensor:
    changed = token_ids.clone()
    changed[0, position] = 2 + (int(changed[0, position]) - 2 + 7) % len(WORDS)  # another word
    return changed


def test_two_bidirectional_layers_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="model.lm needs directions that do not mix.*separate_directions"):
        lm_model(bidirectional=True, num_layers=2)


def test_targets_are_the_neighbours_and_rare_words_are_unk():
    model = lm_model(bidirectional=True)
    head = model.heads["lm"]
    # ids: 2 = w0 (class 1), 21 = w19 (class 20, the last kept), 22 = w20 (rarer: <unk>, class 0), 1 = <unk>
    batch = {"token_ids": torch.tensor([[2, 21, 22, 1], [3, 4, 0, 0]]), "lengths": torch.tensor([4, 2])}
    targets = head.targets(batch)  # (B, T, D)
    I = IGNORE_INDEX  # noqa: E741
    assert targets[..., 0].tolist() == [[20, 0, 0, I], [3, I, I, I]]  # the next word
    assert targets[..., 1].tolist() == [[I, 1, 20, 0], [I, 2, I, I]]  # the previous word


def sentences(n: int, seed: int) -> list[dict]:
    """A language with structure: each word is followed by the next id, wrapping around; tags by parity."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        start, length = rng.randrange(len(WORDS)), rng.randint(3, 10)
        ids = [2 + (start + i) % len(WORDS) for i in range(length)]
        examples.append({"token_ids": ids, "tagger": [i % 2 for i in ids]})
    return examples


@pytest.mark.parametrize("tagger", [False, True], ids=["alone", "auxiliary"])
def test_perplexity_falls_as_it_learns(tagger):
    torch.manual_seed(0)
    heads = {"lm": {"vocab_size": 30, "dropout": 0.0, "loss_weight": 0.5}} | ({"tagger": {}} if tagger else {})
    model = SequenceModel(VOCAB, encoder=SIZES, optimizer=functools.partial(torch.optim.Adam, lr=0.02), **heads)
    loader = DataLoader(sentences(64, 0), batch_size=16, collate_fn=PadCollator())
    validation = DataLoader(sentences(32, 1), batch_size=16, collate_fn=PadCollator())
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    first = trainer.validate(copy.deepcopy(model), validation, verbose=False)[0]["val/lm/perplexity"]
    assert first == pytest.approx(31, rel=0.2)  # untrained: about uniform over 30 words + <unk>
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader, validation)
    assert trainer.callback_metrics["val/lm/perplexity"] < first / 3
    assert ("val/tagger/acc" in trainer.callback_metrics) == tagger


def test_a_batch_of_one_word_sentences_has_a_zero_lm_loss_not_nan():
    """One-word sentences have no neighbour to predict: the loss is 0 (no gradient), where a mean over no
    targets would be nan and stop the training (as a length-bucketed batch of UD-EWT's one-word sentences did)."""
    model = lm_model(bidirectional=True).train()
    head = model.heads["lm"]
    batch = {"token_ids": torch.tensor([[2], [3]]), "lengths": torch.tensor([1, 1])}
    scores = model(batch["token_ids"], batch["lengths"])["lm"]  # (B, 1, D, V)
    loss = head.loss(scores, head.targets(batch))
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
