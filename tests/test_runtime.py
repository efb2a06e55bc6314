"""Running exports: OnnxPredictor predicts from an .onnx file alone what the checkpoint predicts, and the
README's ONNX Runtime example runs as written."""

import re
from pathlib import Path

import pytest
import torch

from seqmodels.data.vocab import CASES, PAD, UNK
from seqmodels.export import export_onnx
from seqmodels.models.sequence_model import SequenceModel
from seqmodels.predictor import Predictor

pytest.importorskip("onnxruntime")
from seqmodels.runtime import OnnxPredictor  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
WORDS = ["the", "plot", "was", "n't", "dull", ".", "a", "fine", "cast"]
SENTENCES = [["The", "plot", "was", "n't", "dull", "."], ["a", "fine", "cast"], ["unheard-of", "Words"], ["dull"] * 30]


def model(crf: bool) -> SequenceModel:
    """Random weights; characters and a case feature (lower-cased lookups) for the multitask model."""
    torch.manual_seed(0)
    vocab = {"tokens": [PAD, UNK, *WORDS], "chars": [PAD, UNK, *sorted(set("".join(WORDS)))], "cases": CASES,
             "tags": ["B-X", "I-X", "O"], "labels": ["negative", "positive"]}  # fmt: skip
    heads = {"tagger": {"crf": True}} if crf else {"tagger": {}, "classifier": {}}
    options = {"max_word_length": 3, "lowercase": True, "tags": None}
    sizes = {"embedding_dim": 6, "hidden_size": 5, "char_channels": 4, "num_layers": 2}
    return SequenceModel(vocab, encoder=sizes, data_options=options, **heads).eval()


@pytest.mark.parametrize("crf", [False, True], ids=["multitask", "crf"])
def test_onnx_predictor_gives_the_checkpoints_records(tmp_path, crf):
    torch_model = model(crf)
    export_onnx(torch_model, tmp_path / "model.onnx")
    expected = Predictor(torch_model, max_tokens=8)(SENTENCES)
    predictor = OnnxPredictor(tmp_path / "model.onnx")
    predictor.predict.max_tokens = 8  # chunks too
    for ours, theirs in zip(predictor(SENTENCES), expected, strict=True):
        assert ours.keys() == theirs.keys() and ours["tags"] == theirs["tags"]  # the CRF's path from its transitions
        for key in ("tag_probs", "label_probs"):
            if key in theirs:
                assert ours[key] == pytest.approx(theirs[key], abs=1e-4)


def test_the_readmes_onnx_runtime_example_runs_as_written(tmp_path, monkeypatch, capsys):
    (example,) = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    export_onnx(model(crf=False), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("['The', 'plot', 'was', \"n't\", 'dull', '.'] ['")
