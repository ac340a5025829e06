"""GradNorm (Chen et al., ICML 2018): weights learned so each task's gradient norm on the last shared
layer tracks the mean norm × (relative inverse training rate)^α, renormalised to sum to T."""

from __future__ import annotations

import torch
from torch import nn

from headstart.ml.multitask.weightings.base import LossWeighting, Rate, register_weighting


@register_weighting("gradnorm")
class GradNormWeighting(LossWeighting):
    needs_shared_parameters = True

    def __init__(self, tasks: list[str], alpha: Rate = 1.5, lr: Rate = 1e-2) -> None:
        """`alpha`: the restoring force toward equal training rates; `lr`: the weights' learning rate."""
        super().__init__(tasks)
        self.task_weights = nn.Parameter(torch.ones(len(tasks)))
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))
        self.alpha, self.lr = alpha, lr

    def parameter_groups(self):
        return [{"params": [self.task_weights], "lr": self.lr, "weight_decay": 0.0}]

    def combine(self, losses):
        weights = self.task_weights.detach()
        return sum(weights[self.tasks.index(task)] * loss for task, loss in losses.items())

    def backward(self, model, total, losses):
        index = [self.tasks.index(task) for task in losses]
        with torch.no_grad():
            for i, task in zip(index, losses):
                if torch.isnan(self.initial_losses[i]):
                    self.initial_losses[i] = losses[task].detach()
        total.backward(retain_graph=True)
        if len(losses) < 2:
            return
        shared = model.last_shared_parameters()
        norms = torch.stack(
            [
                self.task_weights[i]
                * torch.cat([g.flatten() for g in torch.autograd.grad(losses[task], shared, retain_graph=True)]).norm()
                for i, task in zip(index, losses)
            ]
        )
        ratios = torch.stack([losses[task].detach() / self.initial_losses[i] for i, task in zip(index, losses)])
        target = norms.mean().detach() * (ratios / ratios.mean()) ** self.alpha
        self.task_weights.grad = torch.autograd.grad((norms - target).abs().sum(), self.task_weights)[0]

    def after_step(self, remeasure):
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())

    def weights(self):
        return {task: float(self.task_weights[i].detach()) for i, task in enumerate(self.tasks)}
