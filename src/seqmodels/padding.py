"""How padding is marked, for every module that must leave it out: targets are ``IGNORE_INDEX`` at padded
positions (cross-entropy, the metrics and the CRF skip them), and :func:`token_mask` tells real tokens apart."""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100  # the target at padded positions: PyTorch's cross-entropy default ignore_index


def token_mask(lengths: Tensor, max_len: int, device: torch.device | None = None) -> Tensor:
    """(B,) lengths -> (B, T) bool, True at the real tokens of each padded row."""
    device = device or lengths.device
    return torch.arange(max_len, device=device) < lengths.to(device)[:, None]
