"""The optimizer and learning-rate schedule of a training, from its config: AdamW or SGD over parameter
groups that carry their own rates and decay; a linear warm-up then cosine annealing, or constant."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from headstart.ml.config import TrainConfig
from headstart.ml.transfer import parameter_groups


def make_optimizer(model: nn.Module, objective: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters only (nanoGPT), with the groups' own rates and decay."""
    groups = (
        parameter_groups(model, config.body_lr, config.head_lr, config.weight_decay, config.layer_decay)
        + objective.parameter_groups()
    )
    return optimizer_over(groups, config)


def optimizer_over(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over parameter groups that carry their own rates and decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.body_lr, momentum=0.9, weight_decay=0.0)
    return torch.optim.AdamW(groups, weight_decay=0.0)  # a group that names no decay gets none (AdamW's own: 0.01)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per optimizer step: linear warm-up then cosine annealing (torch's own schedulers), or None (constant)."""
    if config.schedule == "constant":
        return None
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    if not warmup:
        return cosine
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=config.warmup_start, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
