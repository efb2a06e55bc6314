"""Adversarial training (Miyato et al. 2017; Yasunaga et al. 2018 for POS tagging): besides the loss on the clean
input, the loss on the LSTM's input moved by ``epsilon`` in the direction that raises the loss most.

The input moved is the encoder's per-token features (word embedding ++ character CNN ++ case embedding), before
its dropout; the direction is the loss gradient, normalised to length 1 per sentence (over all its tokens and
features). It costs one more forward and backward pass per step, and nothing at evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import torch
from torch import Tensor

from seqmodels.models.encoder import LSTMEncoder


class AdversarialConfig(TypedDict, total=False):
    """``model.adversarial`` in the configs: ``epsilon``, the length of each sentence's perturbation."""

    epsilon: float


def checked(config: AdversarialConfig | None) -> AdversarialConfig | None:
    """``config``, if its ``epsilon`` is a positive number (a negative one would move the input to a lower loss)."""
    epsilon = (config or {}).get("epsilon")
    if config is not None and (not isinstance(epsilon, (int, float)) or epsilon <= 0):
        raise ValueError(f"model.adversarial.epsilon must be a number > 0, got {epsilon}")
    return config


@contextmanager
def changed_inputs(encoder: LSTMEncoder, change: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, every encoder pass feeds ``change(features)`` to its dropout and LSTM, for the token
    features (B, T, E') it computed."""
    handle = encoder.input_dropout.register_forward_pre_hook(lambda module, args: (change(args[0]),))
    try:
        yield
    finally:
        handle.remove()


def clean_and_adversarial(
    compute: Callable[[], dict[str, Any]], encoder: LSTMEncoder, epsilon: float
) -> tuple[dict[str, Any], Tensor]:
    """``compute()`` (a training step's losses: its ``loss``) on the clean input, and the ``loss`` of ``compute()``
    again with each encoder pass's input moved by ``epsilon`` along its normalised gradient (a constant: the step
    does not back-propagate through the direction, as in Miyato et al.)."""
    features: list[Tensor] = []

    def record(x: Tensor) -> Tensor:  # (B, T, E'); a leaf when nothing before it learns (frozen embeddings)
        x = x if x.requires_grad else x.detach().requires_grad_()
        features.append(x)
        return x

    with changed_inputs(encoder, record):
        clean = compute()
    gradients = torch.autograd.grad(clean["loss"], features, retain_graph=True, allow_unused=True)
    steps = iter([
        torch.zeros_like(x) if g is None else epsilon * g / g.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]
        for x, g in zip(features, gradients)
    ])  # fmt: skip  # one (B, T, E') per encoder pass, in the order of the passes
    with changed_inputs(encoder, lambda x: x + next(steps)):
        perturbed = compute()["loss"]
    return clean, perturbed
