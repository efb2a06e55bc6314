"""Task heads: small modules that turn the encoder's output into scores for one task."""

from __future__ import annotations

from typing import TypedDict

from torch import Tensor, nn

from seqmodels.encoder import EncoderOutput


class TaggerConfig(TypedDict, total=False):
    """``model.tagger`` in the configs."""

    dropout: float
    loss_weight: float


class ClassifierConfig(TypedDict, total=False):
    """``model.classifier`` in the configs; ``hidden_size`` > 0 adds a hidden layer (an MLP head)."""

    dropout: float
    hidden_size: int
    loss_weight: float


class TaggingHead(nn.Module):
    """One tag per token, from the encoder's ``outputs``: dropout -> Linear(D*H -> num_tags)."""

    target_key = "tag_ids"

    def __init__(self, input_size: int, num_tags: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_size, num_tags))

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.outputs)  # (B, T, num_tags)


class ClassificationHead(nn.Module):
    """One label per sentence, from the encoder's ``final`` states: dropout -> [Linear -> ReLU -> dropout] -> Linear."""

    target_key = "label_ids"

    def __init__(self, input_size: int, num_classes: int, dropout: float = 0.5, hidden_size: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_size > 0:
            layers += [nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            input_size = hidden_size
        layers.append(nn.Linear(input_size, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, encoded: EncoderOutput) -> Tensor:
        return self.net(encoded.final)  # (B, num_classes)
