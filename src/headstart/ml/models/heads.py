"""The task-specific classifier every backbone ends in: linear, or an MLP when layers are added."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchvision.ops import MLP


def make_head(num_features: int, num_classes: int, hidden: Sequence[int] = ()) -> nn.Module:
    """A fresh, randomly initialised head; `hidden` widths add ReLU layers before the output layer
    (torchvision's MLP, without dropout)."""
    if not hidden:
        return nn.Linear(num_features, num_classes)
    return MLP(num_features, [*hidden, num_classes], activation_layer=nn.ReLU, inplace=True, dropout=0.0)
