"""seqmodels-shapes: the article's examples, batch_first, proj_size, a config file, and the copies in docs/shapes.md."""

import re
import shlex
from pathlib import Path

import pytest
from models.test_heads import LengthHead
from test_docs import fenced

from seqmodels.models.heads import HEADS, register_head
from seqmodels.shapes import main, parse_args, render, shape_rows

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ARTICLE = ["--embedding_dim", "10", "--hidden_size", "20", "--batch_size", "3", "--seq_len", "5"]


def shapes(argv: list[str]) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in seqmodels-shapes's table for ``argv``."""
    return {row.name: row.shape for row in shape_rows(**parse_args(argv))}


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "output", "h_n"),
    [(1, "false", (3, 5, 20), (1, 3, 20)), (2, "false", (3, 5, 20), (2, 3, 20)), (2, "true", (3, 5, 40), (4, 3, 20))],
)
def test_the_articles_examples(num_layers, bidirectional, output, h_n):
    rows = shapes([*ARTICLE, "--num_layers", str(num_layers), "--bidirectional", bidirectional])
    assert rows["token_ids"] == (3, 5) and rows["lstm input"] == (3, 5, 10)
    assert rows["output"] == output and rows["output (batch_first=False)"] == (5, 3, output[-1])
    assert rows["h_n"] == h_n and rows["c_n"] == h_n
    assert rows["encoder.outputs"] == output and rows["encoder.final"] == (3, output[-1])
    assert rows["tagger scores"] == (3, 5, 17) and rows["classifier scores"] == (3, 2)
    assert ("output[..., 20:]" in rows) == (bidirectional == "true")


def test_batch_first_false_moves_time_first_in_output_only():
    rows = shapes([*ARTICLE, "--num_layers", "2", "--bidirectional", "true", "--batch_first", "false"])
    assert rows["output"] == (5, 3, 40) and rows["output[..., :20]"] == (5, 3, 20)
    assert rows["output (batch_first=True)"] == (3, 5, 40)
    assert rows["h_n"] == (4, 3, 20) and rows["h_n.view(L, D, B, H)"] == (2, 2, 3, 20)  # layer-major either way
    assert rows["encoder.outputs"] == (3, 5, 40)  # the encoder is always batch-first


def test_proj_size_shrinks_output_and_h_n_but_not_c_n():
    rows = shapes([*ARTICLE, "--num_layers", "2", "--bidirectional", "true", "--proj_size", "8"])
    assert rows["output"] == (3, 5, 16) and rows["output[..., 8:]"] == (3, 5, 8)
    assert rows["h_n"] == (4, 3, 8) and rows["c_n"] == (4, 3, 20)
    assert rows["encoder.final"] == (3, 16) and rows["tagger scores"] == (3, 5, 17)


def test_a_config_file_with_flags_over_it(capsys):
    main(["--config", str(CONFIGS / "conll2003_ner.yaml"), "--hidden_size", "7"])
    printed = capsys.readouterr().out
    rows = shapes(["--config", str(CONFIGS / "conll2003_ner.yaml"), "--hidden_size", "7"])
    assert rows["chars(char_ids)"] == (3, 5, 50) and rows["case_embedding(case_ids)"] == (3, 5, 8)
    assert rows["lstm input"] == (3, 5, 100 + 50 + 8) and rows["output"] == (3, 5, 14)
    assert "tagger scores" in rows and "classifier scores" not in rows  # classifier: null
    assert printed.splitlines()[0].split() == ["tensor", "shape", "axes"] and "chars(char_ids)" in printed


def test_separate_directions_show_the_encoders_results():
    """pretrain_lm.yaml's two stacks are no one nn.LSTM: no bare-LSTM rows, the encoder's own instead."""
    rows = shapes(["--config", str(CONFIGS / "pretrain_lm.yaml"), "--hidden_size", "7"])
    assert "output" not in rows and rows["encoder.outputs"] == (3, 5, 14) and rows["encoder.final"] == (3, 14)
    assert rows["lm scores"][:3] == (3, 5, 2)


def test_a_head_with_classes_of_its_own_is_picked_up(tmp_path, capsys):
    """README's "Add a task" example, LengthHead (``vocab_name = None``), registered as a user's module registers
    it, and configured as a config file does (``model.heads``)."""
    config = tmp_path / "length.yaml"
    config.write_text("model:\n  tagger: {}\n  heads:\n    length: {threshold: 3}\n", encoding="utf-8")
    register_head(LengthHead)
    try:
        main(["--config", str(config), *ARTICLE])
    finally:
        HEADS.pop(LengthHead.name)
    printed = capsys.readouterr().out
    assert re.search(r"^length scores +\(3, 2\) +B, K=2: short or long$", printed, re.MULTILINE), printed
    assert re.search(r"^tagger scores +\(3, 5, 17\) ", printed, re.MULTILINE)


def test_readme_blocks_are_what_the_tool_prints():
    """Each fenced block of README.md and docs/*.md that starts with ``$ seqmodels-shapes ...`` holds exactly that
    command's output."""
    blocks = fenced(re.compile(r"^```[^\n]*\n\$ (seqmodels-shapes[^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL))
    assert blocks, "README.md and docs/*.md have no fenced block starting with a `$ seqmodels-shapes ...` line"
    for path, (command, printed) in blocks:
        assert printed.rstrip("\n") == render(shlex.split(command)[1:]), f"{path.name}: block for `{command}` is stale"
