"""Fixed weights: Σ w_t·L_t with weights from conf (Keras `loss_weights`); 1 each is equal weighting."""

from __future__ import annotations

from headstart.ml.multitask.weightings.base import LossWeighting, register_weighting


@register_weighting("fixed")
class FixedWeighting(LossWeighting):
    def __init__(self, tasks: list[str], weights: dict[str, float] | None = None) -> None:
        """`weights`: per task, 1 for a task left out."""
        super().__init__(tasks)
        self.fixed = {task: float((weights or {}).get(task, 1.0)) for task in tasks}

    def combine(self, losses):
        return sum(self.fixed[task] * loss for task, loss in losses.items())

    def weights(self):
        return dict(self.fixed)
