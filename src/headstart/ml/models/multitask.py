"""Multi-task networks over our backbones; both return {task: logits}.

- hard sharing: one trunk (a backbone's body), one head per task (Caruana 1997);
- soft sharing: one whole network per task, pulled together by an L2 penalty between their
  corresponding body weights, λ·Σ_{t<s} ‖w_t − w_s‖² (Duong et al. 2015).

A single-task baseline is hard sharing with one task: the same trunk, head, budget and loop.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from headstart.ml.models.backbone import block_parameters
from headstart.ml.models.heads import make_head


def _build_backbone(config: dict[str, Any], num_classes: int) -> nn.Module:
    from headstart.ml.models import build_model

    return build_model({**config, "num_classes": num_classes})


# Each multi-task method's sharing, and the model that implements it (single-task: one network per task).
SHARING_MODELS = {"single_task": "hard_sharing", "hard": "hard_sharing", "soft": "soft_sharing"}


class HardSharingModel(nn.Module):
    def __init__(self, trunk: dict[str, Any], tasks: dict[str, int], head_depth: int = 1, head_width: int = 64) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.trunk = _build_backbone(trunk, 1)
        self.trunk.head = nn.Identity()  # the trunk's own head is unused: each task has its own
        hidden = [head_width] * (head_depth - 1)
        self.heads = nn.ModuleDict({task: make_head(self.trunk.num_features, n, hidden) for task, n in tasks.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk.forward_features(images)
        return {task: head(features) for task, head in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """GradNorm's W: the parameters of the trunk's last block."""
        return block_parameters(self.trunk, -1)


class SoftSharingModel(nn.Module):
    def __init__(self, trunk: dict[str, Any], tasks: dict[str, int], head_depth: int = 1, head_width: int = 64) -> None:
        super().__init__()
        self.tasks = list(tasks)
        hidden = [head_width] * (head_depth - 1)
        self.networks = nn.ModuleDict()
        for task, classes in tasks.items():
            network = _build_backbone(trunk, classes)
            network.reset_classifier(classes, hidden)
            self.networks[task] = network

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {task: network(images) for task, network in self.networks.items()}

    def penalty(self) -> torch.Tensor:
        """Σ over task pairs and corresponding body parameters of ‖w_t − w_s‖² (heads differ in shape)."""
        bodies = [
            {name: p for name, p in network.named_parameters() if not name.startswith("head.")}
            for network in self.networks.values()
        ]
        total = torch.zeros((), device=next(self.parameters()).device)
        for first, second in itertools.combinations(bodies, 2):
            for name, weight in first.items():
                total = total + (weight - second[name]).pow(2).sum()
        return total

    def shared_parameters(self) -> list[nn.Parameter]:
        return []


MULTITASK_ARCHITECTURES = {"hard_sharing": HardSharingModel, "soft_sharing": SoftSharingModel}


def build_multitask_model(config: dict[str, Any]) -> nn.Module:
    """From {"name": "hard_sharing" | "soft_sharing", "trunk": {...}, "tasks": {task: classes}, ...}."""
    settings = dict(config)
    return MULTITASK_ARCHITECTURES[settings.pop("name")](**settings)
