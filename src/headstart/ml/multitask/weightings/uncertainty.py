"""Uncertainty weighting (Kendall et al., CVPR 2018): Σ exp(−s_t)·L_t + s_t, s_t = log σ_t² learned.

TorchJD's `UW` is the same at half our scale (½e^(−s)L + ½s), but it needs every task's loss in every
batch; ours leaves out a task with no label in the batch, so it stays.
"""

from __future__ import annotations

import torch
from torch import nn

from headstart.ml.multitask.weightings.base import LossWeighting, Rate, register_weighting


@register_weighting("uncertainty")
class UncertaintyWeighting(LossWeighting):
    def __init__(self, tasks: list[str], lr: Rate = 1e-2) -> None:
        """`lr`: the learning rate of the log-variances."""
        super().__init__(tasks)
        self.log_variance = nn.Parameter(torch.zeros(len(tasks)))
        self.lr = lr

    def parameter_groups(self):
        return [{"params": [self.log_variance], "lr": self.lr, "weight_decay": 0.0}]

    def combine(self, losses):
        s = {task: self.log_variance[i] for i, task in enumerate(self.tasks)}
        return sum(torch.exp(-s[task]) * loss + s[task] for task, loss in losses.items())

    def weights(self):
        return {task: float(torch.exp(-self.log_variance[i].detach())) for i, task in enumerate(self.tasks)}
