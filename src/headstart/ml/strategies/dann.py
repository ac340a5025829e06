"""`dann`, domain-adversarial training (Ganin et al., JMLR 2016), feature-based: the target and source
cross-entropy + a domain classifier's loss behind a gradient reversal layer, whose λ follows Ganin et
al.'s schedule up to `weight` (its grid)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from headstart.ml.strategies.base import SOURCE_IMAGES, UNLABELLED_TARGET, register
from headstart.ml.strategies.objective import DomainObjective, ObjectiveKnobs, ObjectiveStrategy


class DannKnobs(ObjectiveKnobs):
    domain_hidden: int = Field(64, ge=1)  # the domain classifier: one hidden layer this wide


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return features.view_as(features)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * gradient, None


def reverse_gradient(features: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward, −scale·gradient backward (DANN's gradient reversal layer)."""
    return _GradientReversal.apply(features, scale)


def dann_schedule(progress: float) -> float:
    """λ_p = 2/(1 + exp(−10p)) − 1 over training progress p ∈ [0, 1] (Ganin et al.): 0 at the start, → 1."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


class DannObjective(DomainObjective):
    def __init__(self, *args, features: int, hidden: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.domain_classifier = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def adaptation_terms(self, batch):
        target = batch.target_features()
        scale = self.weight * dann_schedule(min(self.steps / max(self.total_steps, 1), 1.0))
        logits = self.domain_classifier(reverse_gradient(torch.cat([batch.source, target]), scale))
        domains = torch.cat([logits.new_zeros(len(batch.source)), logits.new_ones(len(target))])
        domain_loss = F.binary_cross_entropy_with_logits(logits.float().squeeze(1), domains.float())
        return [self.source_loss(batch), domain_loss]


@register
class Dann(ObjectiveStrategy):
    name = "dann"
    family = "feature-based"
    Knobs = DannKnobs
    uses = (SOURCE_IMAGES, UNLABELLED_TARGET)

    def objective(self, task, config, model, report):
        settings = DannObjective.common_settings(task, config, task.source_model())
        hidden = config.knobs.domain_hidden
        objective = DannObjective(
            task.source, task.unlabelled, self.weight(config), features=model.num_features, hidden=hidden, **settings
        )
        return objective, 0
