"""`similarity_preserving` distillation (Tung & Mori, ICCV 2019), relational: the target model, from
random init, also matches the frozen source model's row-normalised batch similarity matrix over the
labelled and unlabelled target images. `weight` is λ's grid (their γ, 3000, in the default run)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headstart.ml.strategies.base import UNLABELLED_TARGET, register
from headstart.ml.strategies.objective import ObjectiveStrategy, RelationalObjective


def similarity_preserving_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """‖G_S − G_T‖²_F / b² between the row-normalised b×b batch similarity matrices G = normalise(F Fᵀ)
    of the two models' embeddings."""
    student, teacher = student.float().flatten(1), teacher.detach().float().flatten(1)
    with torch.autocast(student.device.type, enabled=False):  # in fp32, as rkd_loss
        similarity_student = F.normalize(student @ student.T, p=2, dim=1)
        similarity_teacher = F.normalize(teacher @ teacher.T, p=2, dim=1)
        return (similarity_student - similarity_teacher).pow(2).sum() / len(student) ** 2


@register
class SimilarityPreserving(ObjectiveStrategy):
    name = "similarity_preserving"
    family = "relational"
    uses = ("source model embeddings", UNLABELLED_TARGET)

    def objective(self, task, config, model, report):
        return RelationalObjective.for_strategy(task, config, self.weight(config), similarity_preserving_loss), 0
