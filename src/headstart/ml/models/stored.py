"""A model as it crosses node boundaries and lands on disk: architecture config, CPU weights, facts about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from headstart.ml.models import build_model


@dataclass
class StoredModel:
    config: dict[str, Any]  # build_model's argument: name, in_channels, num_classes, ...
    state: dict[str, torch.Tensor]  # CPU tensors
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able: how it was made (history, report, ...)

    @classmethod
    def from_module(cls, model: nn.Module, config: dict[str, Any], info: dict[str, Any] | None = None) -> StoredModel:
        state = {key: tensor.detach().cpu().contiguous() for key, tensor in model.state_dict().items()}
        return cls(dict(config), state, dict(info or {}))

    def build(self) -> nn.Module:
        from headstart.ml.transfer import load_full_state

        model = build_model(self.config)
        load_full_state(model, self.state)
        return model
