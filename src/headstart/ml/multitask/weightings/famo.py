"""FAMO (Liu et al., NeurIPS 2023), TorchJD's `FAMO` scalarizer: Σ z_t·log ℓ_t / c backpropagated, and
after each step the task logits follow the change of the log-losses re-measured on the same batch (no
per-task gradients: about one more forward per step)."""

from __future__ import annotations

import torch
from torchjd.scalarization import FAMO

from headstart.ml.multitask.weightings.base import LossWeighting, NonNegative, Rate, register_weighting


@register_weighting("famo")
class FAMOWeighting(LossWeighting):
    """TorchJD's FAMO: the task weights z = softmax(w) move toward the task whose loss fell least.
    A batch without some task's labels trains on the mean of the others and leaves w as it is."""

    def __init__(self, tasks: list[str], lr: Rate = 0.025, weight_decay: NonNegative = 1e-3) -> None:
        """`lr`: the logits' learning rate, 0.025 the paper's; `weight_decay`: their decay γ (its Algorithm 2)."""
        super().__init__(tasks)
        self.famo = FAMO(len(tasks), lr=lr, weight_decay=weight_decay)
        self.complete = False  # whether the last combined batch had every task (FAMO's update needs them all)

    def combine(self, losses):
        self.complete = len(losses) == len(self.tasks)
        if not self.complete:
            return sum(losses.values()) / len(losses)
        return self.famo(torch.stack([losses[task] for task in self.tasks]))

    def after_step(self, remeasure):
        if self.complete:
            with torch.no_grad():
                after = remeasure()
            self.famo.update(torch.stack([after[task] for task in self.tasks]))

    def weights(self):
        return {task: float(w) for task, w in zip(self.tasks, torch.softmax(self.famo._w.detach(), 0))}
