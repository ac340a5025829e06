"""`lwf`, Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017), conservative: the source head
stays on the body and trains too; its outputs on the target images are held near the frozen source
model's by λ·KL at temperature T. `weight` is λ's grid."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from headstart.ml.strategies.base import register
from headstart.ml.strategies.objective import Frozen, ObjectiveKnobs, ObjectiveStrategy, ObjectiveWithReferences
from headstart.ml.training import StepParts


class LwFKnobs(ObjectiveKnobs):
    temperature: float = Field(2.0, gt=0)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) ‖ softmax(student/T)), mean over the batch (LwF's term; zero when they agree)."""
    return F.kl_div(
        F.log_softmax(student_logits.float() / temperature, dim=1),
        F.log_softmax(teacher_logits.float() / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )


class LwFObjective(ObjectiveWithReferences):
    reaches_past_forward = True

    def __init__(self, source_model: nn.Module, weight: float, temperature: float, head_lr: float) -> None:
        super().__init__()
        self.teacher = Frozen(source_model)
        self.source_head = copy.deepcopy(source_model.head).requires_grad_(True)
        self.weight, self.temperature, self.head_lr = weight, temperature, head_lr

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.source_head.parameters()), "lr": self.head_lr, "weight_decay": 0.0}]

    def loss(self, model, inputs, targets):
        features = model.forward_features(inputs)
        student = self.source_head(features)
        with torch.no_grad():
            teacher = self.teacher(inputs)
        outputs = model.head(features)
        loss = F.cross_entropy(outputs.float(), targets)
        distilled = self.weight * distillation_loss(student, teacher, self.temperature)
        return loss + distilled, StepParts(outputs)


@register
class LwF(ObjectiveStrategy):
    name = "lwf"
    family = "conservative"
    Knobs = LwFKnobs
    uses = ("source model outputs",)
    needs_source_weights = True

    def objective(self, task, config, model, report):
        source_model = task.source_model()
        return LwFObjective(source_model, self.weight(config), config.knobs.temperature, config.training.head_lr), 0
