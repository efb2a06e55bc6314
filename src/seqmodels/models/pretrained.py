"""Start a task model's encoder from a pretrained one (``model.init_from``): a language model trained on the user's
unlabelled text (``configs/pretrain_lm.yaml``), or any other seqmodels checkpoint.

The encoder's shape (sizes, layers, directions, character encoder) comes from the pretrained checkpoint (a warning
names each size of the task's config it replaces), its regularisation (dropouts, frozen embeddings) and ``kernel``
from the task's config. Weights are copied as they are, except the embedding tables, whose rows are copied by
symbol: a word, character or case keeps its pretrained vector whatever its id in the task's vocabulary, and one the
pretrained model never saw keeps its fresh one. A lower learning rate for the encoder than for the heads
(``model.encoder_lr_factor``) keeps more of what it learnt.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqmodels.checkpoints import CheckpointError
from seqmodels.models.encoder import EncoderConfig, LSTMEncoder

# Settings that change how the encoder trains or runs, not its weights' shapes: the task's config decides these.
TASK_SETTINGS = ("dropout", "word_dropout", "locked_dropout", "freeze_embeddings", "kernel")
# Each embedding table, by the vocabulary that indexes its rows.
TABLES = {"embedding.weight": "tokens", "chars.embedding.weight": "chars", "case_embedding.weight": "cases"}


def encoder_config(pretrained: dict[str, Any], task: EncoderConfig, path: str | Path) -> EncoderConfig:
    """The pretrained encoder's settings, with the task's regularisation and kernel; a warning names each shape
    setting of the task's config that the pretrained one's replaces."""
    config = dict(pretrained["hyper_parameters"].get("encoder") or {})
    for key in TASK_SETTINGS:
        config.pop(key, None)
        if key in task:
            config[key] = task[key]
    defaults = {name: parameter.default for name, parameter in inspect.signature(LSTMEncoder).parameters.items()}
    theirs = {key: config.get(key, defaults.get(key)) for key in task if key not in TASK_SETTINGS}
    replaced = [f"{key} {theirs[key]} (the config's {task[key]})" for key in theirs if theirs[key] != task[key]]
    if replaced:
        warnings.warn(f"model.init_from: the encoder takes {path}'s shape: {', '.join(replaced)}", stacklevel=2)
    return EncoderConfig(**config)


def check_same_reading(pretrained: dict[str, Any], vocab: dict[str, list[str]], data_options: dict[str, Any],
                       path: str | Path) -> None:  # fmt: skip
    """Fail in one line when the task reads tokens otherwise than the pretrained model did (characters or not,
    lower-cased or not, characters kept per word): the encoder's input would not be the one its weights expect."""
    hparams = pretrained["hyper_parameters"]
    theirs = {"char_features": "chars" in hparams["vocab"], **(hparams.get("data_options") or {})}
    ours = {"char_features": "chars" in vocab, **data_options}
    for key in ("char_features", "lowercase", "max_word_length"):
        if key in theirs and theirs[key] != ours.get(key):
            raise CheckpointError(f"{path} was trained with data.{key}={theirs[key]}, and this run has "
                                  f"{ours.get(key)}: set --data.{key} {theirs[key]}")  # fmt: skip


def load_encoder(encoder: LSTMEncoder, vocab: dict[str, list[str]], pretrained: dict[str, Any], path: str | Path
                 ) -> None:  # fmt: skip
    """Copy the pretrained encoder's weights into ``encoder`` (built from :func:`encoder_config`), the embedding
    tables row by row by symbol (see the module docstring)."""
    theirs = {name.removeprefix("encoder."): weight for name, weight in pretrained["state_dict"].items()
              if name.startswith("encoder.")}  # fmt: skip
    their_vocab = pretrained["hyper_parameters"]["vocab"]
    state = encoder.state_dict()
    missing = sorted(set(state) - set(theirs))
    if missing:
        raise CheckpointError(f"{path} has no encoder weights {missing[:3]}: not a seqmodels model of this version?")
    for name in state:
        table = TABLES.get(name)
        state[name] = by_symbol(state[name], theirs[name], vocab[table], their_vocab[table]) if table else theirs[name]
    encoder.load_state_dict(state)


def by_symbol(ours: Tensor, theirs: Tensor, our_symbols: list[str], their_symbols: list[str]) -> Tensor:
    """``ours`` (V, E) with the rows of the symbols ``theirs`` (V', E) has too replaced by theirs."""
    rows = {symbol: row for row, symbol in enumerate(their_symbols)}
    pairs = [(row, rows[symbol]) for row, symbol in enumerate(our_symbols) if symbol in rows]
    table = ours.clone()
    if pairs:
        to, source = torch.tensor(pairs).T  # (2, N)
        table[to] = theirs[source].to(table.dtype)
    return table


def with_encoder_lr(optimizer: Callable[[Iterable[Any]], torch.optim.Optimizer], model: nn.Module, factor: float
                    ) -> torch.optim.Optimizer:  # fmt: skip
    """``optimizer`` over ``model``'s parameters, those of ``model.encoder`` at ``factor`` times its learning rate
    (their own parameter group; one group, as before, when ``factor`` is 1)."""
    if not 0 < factor < math.inf:  # PositiveFloat lets inf through
        raise ValueError(f"model.encoder_lr_factor must be positive and finite, got {factor}")
    if factor == 1:
        return optimizer(model.parameters())
    encoder = list(model.encoder.parameters())
    in_encoder = {id(parameter) for parameter in encoder}
    rest = [parameter for parameter in model.parameters() if id(parameter) not in in_encoder]
    built = optimizer([{"params": encoder}, {"params": rest}])
    built.param_groups[0]["lr"] *= factor  # before any scheduler reads it as the initial learning rate
    return built


def check_same_groups(checkpoint: dict[str, Any], factor: float) -> None:
    """Fail in one line when training resumes with another ``encoder_lr_factor`` than the checkpoint's: the
    optimizer's state would not fit its groups (from or to 1), or would bring back the old ratio unsaid."""
    theirs = checkpoint.get("hyper_parameters", {}).get("encoder_lr_factor", 1.0)
    if theirs != factor:
        raise CheckpointError(f"the checkpoint trained with model.encoder_lr_factor={theirs}, and this run has "
                              f"{factor}: resume with --model.encoder_lr_factor {theirs}")  # fmt: skip
