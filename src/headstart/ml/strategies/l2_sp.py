"""`l2_sp` (Li, Grandvalet & Davoine, ICML 2018), conservative: fine-tune everything, pulled toward the
source weights by α/2·Σ‖w − w⁰‖² over the transferred parameters, β/2·‖w‖² on the new head, in place
of plain weight decay. `weight` is α's grid; `head_weight` is β."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from headstart.ml.strategies.base import register
from headstart.ml.strategies.objective import ObjectiveKnobs, ObjectiveStrategy, ObjectiveWithReferences
from headstart.ml.training import bare_model


class L2SPKnobs(ObjectiveKnobs):
    head_weight: float = Field(0.01, ge=0)  # β on the new head


def l2_sp_penalty(model: nn.Module, anchors: dict[str, torch.Tensor], alpha: float, beta: float) -> torch.Tensor:
    """α/2·Σ‖w − w_source‖² over the trainable transferred parameters (`anchors`: their source values)
    + β/2·‖w‖² over the other trainable ones, the new head (Li et al., ICML 2018)."""
    body, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            if name in anchors:
                body.append((parameter - anchors[name]).pow(2).sum())
            else:
                rest.append(parameter.pow(2).sum())
    zero = next(model.parameters()).new_zeros(())
    return alpha / 2 * sum(body, zero) + beta / 2 * sum(rest, zero)


class L2SPObjective(ObjectiveWithReferences):
    """Cross-entropy + the L2-SP penalty, in place of plain weight decay (the strategy sets decay to 0)."""

    def __init__(self, anchors: dict[str, torch.Tensor], alpha: float, beta: float) -> None:
        super().__init__()
        self.anchors, self.alpha, self.beta = anchors, alpha, beta

    def loss(self, model, inputs, targets):
        loss, parts = super().loss(model, inputs, targets)
        return loss + l2_sp_penalty(bare_model(model), self.anchors, self.alpha, self.beta), parts


@register
class L2SP(ObjectiveStrategy):
    name = "l2_sp"
    family = "conservative"
    Knobs = L2SPKnobs
    needs_source_weights = True
    replaces_weight_decay = True

    def objective(self, task, config, model, report):
        """Anchored at the source values of the transferred parameters that train."""
        trainable = dict(model.named_parameters())
        anchors = {name: task.source_state[name].detach().float() for name in report.copied if name in trainable}
        return L2SPObjective(anchors, self.weight(config), config.knobs.head_weight), 0
