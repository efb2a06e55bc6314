"""Running exports: OnnxPredictor predicts from an .onnx file alone what the checkpoint predicts, and the
documentation's ONNX Runtime example (docs/inference.md) runs as written."""

import re

import pytest
import torch
from test_docs import fenced

from seqmodels.data.vocab import CASES, PAD, UNK
from seqmodels.inference.export import export_onnx
from seqmodels.inference.predictor import Predictor
from seqmodels.models.sequence_model import SequenceModel

pytest.importorskip("onnxruntime")
from seqmodels.inference.onnx_runtime import OnnxPredictor  # noqa: E402

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
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
    """The one python block of README.md and docs/*.md that runs OnnxPredictor, run in a folder with model.onnx."""
    ((path, example),) = [(path, block) for path, block in fenced(PYTHON_BLOCK) if "OnnxPredictor(" in block]
    export_onnx(model(crf=False), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(path), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("['The', 'plot', 'was', \"n't\", 'dull', '.'] ['")
