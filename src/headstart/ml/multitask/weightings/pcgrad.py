"""PCGrad (Yu et al., NeurIPS 2020): per-task gradients on the shared parameters; a gradient conflicting
with another (negative dot product) is projected onto the other's normal plane; summed."""

from __future__ import annotations

import random

import torch

from headstart.ml.multitask.weightings.base import SharedGradientWeighting, register_weighting


@register_weighting("pcgrad")
class PCGradWeighting(SharedGradientWeighting):
    def __init__(self, tasks: list[str], seed: int = 0) -> None:
        """`seed`: the run's, for the order in which each gradient meets the others."""
        super().__init__(tasks)
        self.random = random.Random(seed)

    def shared_backward(self, shared, total, losses):
        grads = []
        for loss in losses.values():
            parts = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            grads.append(
                torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(parts, shared)])
            )
        total.backward()  # the heads' gradients; the shared ones are replaced below
        projected = [g.clone() for g in grads]
        for i, g in enumerate(projected):
            others = [j for j in range(len(grads)) if j != i]
            self.random.shuffle(others)
            for j in others:
                dot = torch.dot(g, grads[j])
                if dot < 0:
                    g -= dot / grads[j].pow(2).sum().clamp_min(1e-12) * grads[j]
        combined, offset = torch.stack(projected).sum(0), 0
        for p in shared:
            p.grad = combined[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
