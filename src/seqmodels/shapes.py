"""Print every tensor from token ids to each head's scores: its name, its shape, and what each axis means.

``seqmodels-shapes [--config FILE] [--vocab_size N --embedding_dim E --hidden_size H --num_layers L
--bidirectional true|false --proj_size P --batch_first true|false --batch_size B --seq_len T --num_tags C
--num_classes K --char_features true|false --lowercase true|false --word_length W]``

With ``--config`` (a project config such as ``configs/ud_upos.yaml``) the encoder and heads are the config's
``model.encoder`` and heads (``model.tagger``, ``model.classifier``, ...), with a character CNN if
``data.char_features`` and a case feature if ``data.lowercase``; flags given on the command line override it.
Every shape is measured by running the modules (an :class:`LSTMEncoder`, its heads, and a bare ``nn.LSTM`` with
the encoder's weights in both layouts), never computed from a formula, so the table cannot drift from the code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

import torch
import yaml
from torch import Tensor, nn

from seqmodels.data.vocab import CASES
from seqmodels.models.encoder import LSTMEncoder
from seqmodels.models.heads import INSTANCE_KEYS, head_configs, head_field, head_type
from seqmodels.models.sequence_model import NAMED_HEADS

NUM_CHARS = 60  # the character vocabulary's size does not show in any shape
ENCODER_FLAGS = ("embedding_dim", "hidden_size", "num_layers", "bidirectional", "proj_size")
DEFAULTS: dict[str, Any] = {
    "vocab_size": 100, "embedding_dim": 10, "hidden_size": 20, "num_layers": 2, "bidirectional": True,
    "proj_size": 0, "batch_first": True, "batch_size": 3, "seq_len": 5, "num_tags": 17, "num_classes": 2,
    "char_features": False, "lowercase": False, "word_length": 6,
}  # fmt: skip


class Row(NamedTuple):
    """One tensor: its name, its shape as measured, and what each axis means."""

    name: str
    shape: tuple[int, ...]
    axes: str


def _row(name: str, tensor: Tensor, axes: str) -> Row:
    return Row(name, tuple(tensor.shape), axes)


def _lstm_like(lstm: nn.LSTM, batch_first: bool) -> nn.LSTM:
    """A bare ``nn.LSTM`` with ``lstm``'s sizes and weights, in the given layout."""
    copy = nn.LSTM(
        lstm.input_size, lstm.hidden_size, lstm.num_layers, bidirectional=lstm.bidirectional,
        proj_size=lstm.proj_size, batch_first=batch_first,
    )  # fmt: skip
    copy.load_state_dict(lstm.state_dict())
    return copy.eval()


def _output_axes(lstm: nn.LSTM) -> str:
    """The size of the LSTM's output, D*P, spelt out: ``D*H=2*20``, or ``D*P=2*5 (proj_size)``."""
    D = 2 if lstm.bidirectional else 1
    return f"D*P={D}*{lstm.proj_size} (proj_size)" if lstm.proj_size else f"D*H={D}*{lstm.hidden_size}"


def _input_rows(model: LSTMEncoder, vocab_size: int, B: int, T: int, W: int) -> tuple[dict[str, Any], list[Row]]:
    """A padded batch of ``B`` sentences of lengths T, T - 1, ... (at least 1), the encoder's inputs (token ids,
    lengths, and characters and case classes when it reads them), and a row for each input and its embedding."""
    lengths = torch.tensor([max(1, T - i) for i in range(B)])  # (B,)
    real = torch.arange(T) < lengths[:, None]  # (B, T)
    inputs: dict[str, Any] = {"token_ids": torch.randint(2, vocab_size, (B, T)) * real}  # (B, T), 0 = <pad>
    inputs |= {"lengths": lengths, "char_ids": None, "case_ids": None}
    rows = [
        _row("token_ids", inputs["token_ids"], f"B={B} sentences, T={T} positions; 0 (<pad>) after each length"),
        _row("lengths", lengths, f"B: real tokens per sentence ({', '.join(map(str, lengths.tolist()))})"),
        _row("embedding(token_ids)", model.embedding(inputs["token_ids"]), f"B, T, E={model.embedding.embedding_dim}"),
    ]
    if model.chars is not None:
        char_ids = inputs["char_ids"] = torch.randint(1, NUM_CHARS, (B, T, W)) * real[..., None]  # (B, T, W)
        rows.append(_row("char_ids", char_ids, f"B, T, W={W}: character ids per token (the longest word)"))
        rows.append(_row("chars(char_ids)", model.chars(char_ids), f"B, T, F={model.chars.output_size}"))
    if model.case_embedding is not None:
        case_ids = inputs["case_ids"] = torch.randint(1, len(CASES), (B, T)) * real  # (B, T)
        rows.append(_row("case_ids", case_ids, f"B, T: the case lower-casing removed ({', '.join(CASES[1:])})"))
        size = model.case_embedding.embedding_dim
        rows.append(_row("case_embedding(case_ids)", model.case_embedding(case_ids), f"B, T, C={size}"))
    return inputs, rows


def _lstm_rows(lstm: nn.LSTM, x: Tensor, batch_first: bool) -> list[Row]:
    """A bare ``nn.LSTM`` with ``lstm``'s weights on the padded batch ``x`` (B, T, E'), unpacked, in the chosen
    layout and in the other: its output (each direction's half when bidirectional), h_n and c_n."""
    B, L, H = x.size(0), lstm.num_layers, lstm.hidden_size
    D, P = 2 if lstm.bidirectional else 1, lstm.proj_size or lstm.hidden_size
    p = "P" if lstm.proj_size else "H"  # the size of h: proj_size, or hidden_size without a projection
    out, time_major = _output_axes(lstm), "B, T" if batch_first else "T, B"
    output, (h_n, c_n) = _lstm_like(lstm, batch_first)(x if batch_first else x.transpose(0, 1))
    other, _ = _lstm_like(lstm, not batch_first)(x.transpose(0, 1) if batch_first else x)
    rows = [_row("output", output, f"{time_major}, {out}: the last layer's h at every step (nn.LSTM, unpacked)")]
    if D == 2:
        rows.append(_row(f"output[..., :{P}]", output[..., :P], f"{time_major}, {p}={P}: forward, t has read 0..t"))
        backward = f"{time_major}, {p}={P}: backward, t has read T-1..t (padding first)"
        rows.append(_row(f"output[..., {P}:]", output[..., P:], backward))
    return rows + [
        _row(f"output (batch_first={not batch_first})", other, f"{'T, B' if batch_first else 'B, T'}, {out}: the same"),
        _row("h_n", h_n, f"L*D={L}*{D} (layer*D + direction), B, {p}={P}: final h, whatever batch_first says"),
        _row(f"h_n.view(L, D, B, {p})", h_n.view(L, D, B, P), f"layer, direction (0 forward, 1 backward), B, {p}"),
        _row("c_n", c_n, f"L*D, B, H={H}: final cell state (H, even with proj_size)"),
    ]


@torch.no_grad()
def shape_rows(
    encoder: dict[str, Any],
    heads: dict[str, dict[str, Any]],
    *,
    vocab_size: int,
    num_tags: int,
    num_classes: int,
    char_features: bool,
    lowercase: bool,
    batch_first: bool,
    batch_size: int,
    seq_len: int,
    word_length: int,
) -> list[Row]:
    """Run an encoder built from ``encoder`` (LSTMEncoder's arguments) and ``heads`` (name -> settings) on a padded
    batch of ``batch_size`` sentences of lengths ``seq_len``, ``seq_len - 1``, ... (at least 1); one row per tensor.

    ``shape_rows(**parse_args(["--num_layers", "1"]))`` takes the command line's defaults.
    """
    torch.manual_seed(0)
    model = LSTMEncoder(
        vocab_size, num_chars=NUM_CHARS if char_features else 0, num_cases=len(CASES) if lowercase else 0, **encoder
    ).eval()
    inputs, rows = _input_rows(model, vocab_size, batch_size, seq_len, word_length)
    x = model.embed(inputs["token_ids"], inputs["char_ids"], inputs["case_ids"])  # (B, T, E')
    rows.append(_row("lstm input", x, f"B, T, E'={x.size(-1)}: what the LSTM reads (embedding ++ chars ++ case)"))
    if isinstance(model.lstm, nn.LSTM):  # a bare nn.LSTM's layouts; separate_directions' two stacks have no one LSTM
        rows += _lstm_rows(model.lstm, x, batch_first)

    # The encoder (padding never changes a result) and the heads.
    encoded = model(**inputs)
    out = _output_axes(model.lstm)
    rows.append(_row("encoder.outputs", encoded.outputs, f"B, T, {out}: exact at any padding; zero at padding"))
    backward = " ++ backward h at the first" if model.lstm.bidirectional else ""
    rows.append(_row("encoder.final", encoded.final, f"B, {out}: forward h at each true last token{backward}"))
    for name, config in heads.items():
        head_class, field = head_type(name, config), head_field(name, config)
        if field.column is not None and head_class.target == "classes":  # its column's: a tag set, a label set
            size = num_tags if field.level == "token" else num_classes
        else:  # a number, the tokens (a language model), or classes of its own
            size = vocab_size if head_class.vocab_name == "tokens" else 0
        classes = [f"{name}{i}" for i in range(size)] if size else None
        arguments = {key: value for key, value in config.items() if key not in INSTANCE_KEYS}
        head = head_class.from_encoder(model, classes, **arguments).named(name, field.column).eval()
        scores = head(encoded)
        rows.append(_row(f"{name} scores", scores, head.score_axes.format(*scores.shape)))
    return rows


def format_rows(rows: list[Row]) -> str:
    """The rows as an aligned text table with a header."""
    table = [("tensor", "shape", "axes")] + [(r.name, str(r.shape), r.axes) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(2)]
    return "\n".join(f"{name:<{widths[0]}}  {shape:<{widths[1]}}  {axes}" for name, shape, axes in table)


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`shape_rows`: the flags given, over the config (if any), over the defaults."""
    parser = argparse.ArgumentParser(prog="seqmodels-shapes", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--config", type=Path, help="a project config: its model.encoder, heads and data features")
    for name, default in DEFAULTS.items():
        kind, shown = (_bool, str(default).lower()) if isinstance(default, bool) else (int, default)
        parser.add_argument(f"--{name}", type=kind, help=f"default: {shown}")
    args = vars(parser.parse_args(argv))
    config_path = args.pop("config")
    given = {name: value for name, value in args.items() if value is not None}
    settings = dict(DEFAULTS)
    if config_path is None:
        encoder = {name: DEFAULTS[name] for name in ENCODER_FLAGS}
        heads: dict[str, dict[str, Any]] = {"tagger": {}, "classifier": {}}
    else:
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            parser.error(f"cannot read {config_path}: {error}")
        model, data = config.get("model") or {}, config.get("data") or {}
        encoder = dict(model.get("encoder") or {})  # what it leaves out takes LSTMEncoder's defaults
        named = {name: model.get(name) for name in NAMED_HEADS if name in model}
        try:
            heads = head_configs(heads=model.get("heads"), **named)
        except ValueError as error:  # an unknown head, one configured twice, two writing the same field
            parser.error(f"{config_path}: {error}")
        settings |= {key: data[key] for key in ("char_features", "lowercase") if key in data}
    encoder |= {name: given[name] for name in ENCODER_FLAGS if name in given}
    settings = {key: value for key, value in (settings | given).items() if key not in ENCODER_FLAGS}
    return settings | {"encoder": encoder, "heads": heads}


def render(argv: list[str] | None = None) -> str:
    """What ``seqmodels-shapes ARGV`` prints."""
    return format_rows(shape_rows(**parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    print(render(argv))


if __name__ == "__main__":
    main()
