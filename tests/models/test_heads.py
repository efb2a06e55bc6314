"""The task-head contract: the built-in heads keep it, and a new head defined here (not in the package) trains
through the same SequenceModel, is evaluated, and predicts from a checkpoint alone."""

import functools
import random
import re
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from seqmodels import shapes
from seqmodels.inference.loading import load_model
from seqmodels.data.batching import PadCollator
from seqmodels.data.vocab import PAD, UNK
from seqmodels.models.encoder import EncoderOutput
from seqmodels.models.heads import HEADS, TaskHead, register_head
from seqmodels.models.heads.tagger import TaggingHead
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.padding import IGNORE_INDEX
from seqmodels.inference.predictor import Predictor


class LengthHead(TaskHead):
    """A third task in one class: is the sentence longer than ``threshold`` tokens? Its targets come from the
    batch itself, so it needs no annotation, and it names its own two classes."""

    name = "length"
    reads = "final"
    column = None
    vocab_name = None
    export_axes = {0: "B"}
    score_axes = "B, K={1}: short or long"
    fields = ("length",)

    def __init__(self, input_size: int, classes: list[str] | None = None, threshold: int = 5, loss_weight: float = 1.0):
        super().__init__(["short", "long"], loss_weight)
        self.threshold = threshold
        self.linear = nn.Linear(input_size, 2)

    def targets(self, batch: dict[str, Any]) -> Tensor:
        return (batch["lengths"] > self.threshold).long().to(batch["token_ids"].device)  # (B,)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.linear(encoded.final)  # (B, 2)

    def loss(self, scores: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(scores, targets)

    def predict(self, scores: Tensor, lengths: Tensor) -> Tensor:
        return scores.argmax(-1)  # (B,)

    def decode(self, scores: Tensor, batch: dict[str, Any]) -> list[dict[str, Any]]:
        return [{self.fields[0]: self.classes[i]} for i in scores.argmax(-1).tolist()]  # named after the instance

    def merge(self, parts: list[dict[str, Any]], lengths: list[int]) -> dict[str, Any]:
        return {self.fields[0]: "long" if sum(lengths) > self.threshold else "short"}

    def render_example(self, tokens: list[str], gold: Tensor, predicted: Tensor, probs: Tensor) -> str:
        return f"length: {self.classes[int(gold)]}, predicted {self.classes[int(predicted)]}"


@pytest.fixture
def length_head():
    """LengthHead registered for one test, as a user's own module registers it on import."""
    register_head(LengthHead)
    yield LengthHead
    HEADS.pop(LengthHead.name)


WORDS = [f"w{i}" for i in range(20)]
VOCAB = {"tokens": [PAD, UNK, *WORDS], "labels": ["negative", "positive"]}


def examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"token_ids": [rng.randrange(2, len(VOCAB["tokens"])) for _ in range(rng.randint(1, 10))],
             "classifier": rng.randrange(2)} for _ in range(n)]  # fmt: skip


@pytest.mark.parametrize(("name", "config"), [("length", {}), ("long", {"type": "length"})])  # named as its type or not
def test_a_new_head_trains_evaluates_and_predicts_from_a_checkpoint(length_head, tmp_path, name, config):
    torch.manual_seed(0)
    adam = functools.partial(torch.optim.Adam, lr=0.01)
    model = SequenceModel(VOCAB, encoder={"embedding_dim": 8, "hidden_size": 8}, classifier={}, heads={name: config},
                          optimizer=adam)  # fmt: skip
    assert list(model.heads) == ["classifier", name]
    loader = DataLoader(examples(128, 0), batch_size=16, collate_fn=PadCollator())
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader, DataLoader(examples(32, 1), batch_size=16, collate_fn=PadCollator()))
    assert {f"val/{name}/acc", f"val/{name}/loss", "val/classifier/acc"} <= set(trainer.callback_metrics)
    assert trainer.callback_metrics[f"val/{name}/acc"] > 0.8  # learnable from `final` alone
    trainer.save_checkpoint(tmp_path / "model.ckpt")

    restored = load_model(tmp_path / "model.ckpt")
    assert restored.hparams.heads == {name: config}
    sentences = [WORDS[:3], WORDS[:9], WORDS[:1]]
    records = Predictor(restored)(sentences)
    assert all(set(r) == {name, "label", "label_probs"} for r in records)
    assert [r[name] for r in records] == [restored.heads[name].classes[i] for i in
                                          restored(*padded(restored, sentences))[name].argmax(-1).tolist()]


def padded(model: SequenceModel, sentences: list[list[str]]) -> tuple[Tensor, Tensor]:
    ids = [torch.tensor(model.vocabularies["tokens"].encode(s)) for s in sentences]
    return nn.utils.rnn.pad_sequence(ids, batch_first=True), torch.tensor([len(s) for s in sentences])


def test_an_unknown_or_doubly_configured_head_is_refused_by_name():
    with pytest.raises(ValueError, match=r"the lenght head: no head type is registered as 'lenght' \(the head gives "
                       r"no type, so its name is taken for one; on the command line, --model.heads.lenght.KEY=VALUE "
                       r"replaces the head's whole entry: give it whole, --model.heads.lenght='\{type: ..., KEY: "
                       r"VALUE\}'\); the registered types are \['classifier', "):
        SequenceModel(VOCAB, classifier={}, heads={"lenght": {}})
    with pytest.raises(ValueError, match="the upos head: unknown key 'colum' for a tagger head .it takes column, "):
        SequenceModel(VOCAB, heads={"upos": {"type": "tagger", "colum": "upos"}})
    with pytest.raises(ValueError, match="the mine head: cannot import its type no_such_package.Head"):
        SequenceModel(VOCAB, heads={"mine": {"type": "no_such_package.Head"}})
    with pytest.raises(ValueError, match="the mine head: seqmodels.models.heads.base.IGNORE_INDEX is not a TaskHead"):
        SequenceModel(VOCAB, heads={"mine": {"type": "seqmodels.models.heads.base.IGNORE_INDEX"}})
    with pytest.raises(ValueError, match="the classifier head is configured twice"):
        SequenceModel(VOCAB, classifier={}, heads={"classifier": {}})
    with pytest.raises(ValueError, match=r"the upos head: label_smoothing must be in \[0, 1\), got abc"):
        SequenceModel({**VOCAB, "upos": ["A", "B"]}, heads={"upos": {"type": "tagger", "label_smoothing": "abc"}})
    with pytest.raises(ValueError, match="a head named 'classifier' is already registered"):
        register_head(type("Other", (LengthHead,), {"name": "classifier"}))


@pytest.fixture
def register():
    """``register(head)``: register_head for one test (what it registered is gone after)."""
    names = []
    yield lambda head: register_head(names.append(head.name) or head)
    for name in names:
        HEADS.pop(name, None)


@pytest.mark.parametrize(
    ("declares", "message"),
    [
        ({}, "the tagger and deprel heads would both write the prediction field 'tags'; a head writes only its own"),
        ({"fields": ("deprels",)}, "the tagger and deprel heads would both write the CoNLL-U column 'tags'"),
    ],
    ids=["same-field", "same-conllu-column"],
)
def test_two_heads_writing_the_same_field_or_column_are_refused_naming_both(register, tmp_path, capsys, declares,
                                                                            message):  # fmt: skip
    """A user's DEPREL tagger, a TaggingHead subclass under another name: as it is, its DEPRELs would replace the
    UPOS tags in every record (and in CoNLL-U output); with fields of its own, it would still fill UPOS's column."""
    register(type("DeprelHead", (TaggingHead,), {"name": "deprel", **declares}))
    vocab = {"tokens": [PAD, UNK, *WORDS], "tags": ["NOUN", "VERB"]}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        SequenceModel(vocab, tagger={}, heads={"deprel": {}})
    config = tmp_path / "deprel.yaml"
    config.write_text("model:\n  tagger: {}\n  heads:\n    deprel: {}\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        shapes.parse_args(["--config", str(config)])
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"seqmodels-shapes: error: {config}: {message}")


def test_a_head_that_decodes_fields_it_does_not_declare_is_stopped(register):
    """Declared fields are what the collision check trusts: a head that writes others fails at its first decode."""
    def decode(self, scores, batch):  # the tagger's records, under the tagger's names
        return [{"tags": record["deprels"]} for record in TaggingHead.decode(self, scores, batch)]

    fields = ("deprels", "deprel_probs", "deprel_crf_path")
    register(type("DeprelHead", (TaggingHead,), {"name": "deprel", "fields": fields, "conllu": None, "decode": decode}))
    model = SequenceModel({"tokens": [PAD, UNK, *WORDS], "tags": ["NOUN", "VERB"]}, tagger={}, heads={"deprel": {}})
    with pytest.raises(ValueError, match=r"^the deprel head decodes \['tags'\], which its `fields` do"):
        Predictor(model)([WORDS[:3]])


def test_a_head_without_a_class_attribute_of_the_contract_is_refused_by_name(register):
    attributes = {name: getattr(LengthHead, name) for name in TaskHead.__annotations__ if name != "fields"}
    with pytest.raises(TypeError, match=r"^NoFields does not set fields \(class attributes; see TaskHead\)$"):
        register(type("NoFields", (TaskHead,), attributes))


@pytest.mark.parametrize("name", ["tagger", "classifier"])
def test_the_built_in_heads_keep_the_contract(name):
    """Scores, a loss that ignores padding, predictions with IGNORE_INDEX at padding, one decoded record per
    sentence whose chunks merge back, and an example line for the report."""
    torch.manual_seed(0)
    vocab = {"tokens": [PAD, UNK, *WORDS], "tags": ["B-X", "I-X", "O"], "labels": ["negative", "positive"]}
    model = SequenceModel(vocab, encoder={"embedding_dim": 8, "hidden_size": 8}, **{name: {"dropout": 0.0}})
    head = model.heads[name]
    lengths = torch.tensor([4, 2])
    token_ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    with torch.no_grad():
        scores = model(token_ids, lengths)[name]
    if head.reads == "outputs":
        targets = torch.tensor([[0, 1, 2, 2], [2, 0, IGNORE_INDEX, IGNORE_INDEX]])
        assert scores.shape == (2, 4, 3) and head.predict(scores, lengths)[1, 2:].eq(IGNORE_INDEX).all()
        real = F.cross_entropy(torch.cat([scores[0], scores[1, :2]]), torch.cat([targets[0], targets[1, :2]]))
        assert head.loss(scores, targets).item() == pytest.approx(real.item())
    else:
        targets = torch.tensor([0, 1])
        assert scores.shape == (2, 2) and head.predict(scores, lengths).shape == (2,)
    records = head.decode(scores, {"token_ids": token_ids, "lengths": lengths})
    assert len(records) == 2 and json_ready(records)
    merged = head.merge(records, lengths.tolist())
    assert set(merged) == set(records[0])
    line = head.render_example([f"w{i}" for i in range(4)], targets[0], head.predict(scores, lengths)[0],
                               scores.softmax(-1)[0])  # fmt: skip
    assert isinstance(line, str) and line
    assert set(head.metrics()) >= {"acc", "f1_macro"}


@pytest.mark.parametrize("name", ["tagger", "classifier"])
def test_label_smoothing_spreads_the_targets_mass_over_the_real_tokens_only(name):
    """With ``label_smoothing`` e, a token's training loss is (1 - e) of its target's negative log-probability plus e
    of the mean over all C classes (written out here, not by torch's own option); padding adds nothing. In
    evaluation the loss is the plain cross-entropy."""
    torch.manual_seed(0)
    vocab = {"tokens": [PAD, UNK, *WORDS], "tags": ["B-X", "I-X", "O"], "labels": ["negative", "positive"]}
    model = SequenceModel(vocab, encoder={"embedding_dim": 8, "hidden_size": 8}, **{name: {"label_smoothing": 0.1}})
    head = model.heads[name]
    scores = torch.randn(2, 4, 3) if head.reads == "outputs" else torch.randn(2, 2)  # (B, T, C) or (B, K)
    targets = torch.tensor([[0, 1, 2, 2], [2, 0, IGNORE_INDEX, IGNORE_INDEX]] if name == "tagger" else [0, 1])
    real = targets != IGNORE_INDEX
    log_probs = scores.log_softmax(-1)[real]  # (N, C): the real tokens' (or sentences')
    target_nll = -log_probs.gather(1, targets[real].unsqueeze(1)).squeeze(1)  # (N,)
    plain = target_nll.mean()
    expected = (0.9 * target_nll - 0.1 * log_probs.mean(-1)).mean()
    assert head.label_smoothing == 0.1 and head.training
    assert head.loss(scores, targets).item() == pytest.approx(expected.item())
    head.eval()  # evaluation losses are the plain cross-entropy, comparable between runs
    assert head.loss(scores, targets).item() == pytest.approx(plain.item())


@pytest.mark.parametrize("config, message", [
    ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\), got 1.0"),
    ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\), got -0.1"),
    ({"label_smoothing": "abc"}, r"label_smoothing must be in \[0, 1\), got abc"),
    ({"label_smoothing": 0.1, "crf": True}, r"\(0.1\) .* crf: true has none: give it label_smoothing: 0"),
])  # fmt: skip
def test_a_label_smoothing_not_in_0_1_or_with_a_crf_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        TaggingHead(8, ["A", "B"], **config)

def json_ready(records: list[dict]) -> bool:
    import json

    return json.loads(json.dumps(records)) == records
