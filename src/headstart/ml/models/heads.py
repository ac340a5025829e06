"""The task-specific classifier every backbone ends in: linear, or an MLP when layers are added."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def make_head(num_features: int, num_classes: int, hidden: Sequence[int] = ()) -> nn.Module:
    """A fresh, randomly initialised head; `hidden` widths add ReLU layers before the output layer."""
    if not hidden:
        return nn.Linear(num_features, num_classes)
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(num_features, width), nn.ReLU(inplace=True)]
        num_features = width
    return nn.Sequential(*layers, nn.Linear(num_features, num_classes))
