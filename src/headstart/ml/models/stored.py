"""A model as it crosses node boundaries and lands on disk: architecture config, CPU weights, facts about it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import safetensors.torch
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

    def encode(self) -> tuple[bytes, bytes]:
        """(safetensors weights, JSON description): the two files every stored model is, on disk or in MLflow."""
        weights = safetensors.torch.save(self.state, metadata={"config": json.dumps(self.config)})
        described = json.dumps({"config": self.config, "info": self.info}, indent=2, default=str).encode()
        return weights, described

    @classmethod
    def decode(cls, weights: bytes, described: bytes) -> StoredModel:
        description = json.loads(described)
        return cls(description["config"], safetensors.torch.load(weights), description.get("info", {}))

    @property
    def in_channels(self) -> int:
        """The channels of the images it takes: a network's `in_channels`, a pixels model's `input_shape`."""
        return int(self.config.get("in_channels", (self.config.get("input_shape") or [1])[0]))

    def build(self) -> nn.Module:
        from headstart.ml.transfer import load_full_state

        model = build_model(self.config)
        load_full_state(model, self.state)
        return model
