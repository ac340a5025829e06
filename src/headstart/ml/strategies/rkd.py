"""`rkd`, relational knowledge distillation (Park et al., CVPR 2019), relational: the target model, from
random init at scratch's rates, also matches the frozen source model's pairwise distances and triplet
angles between the embeddings of the labelled and unlabelled target images, so what it gains over
scratch is what the relations carried (no weights are copied). `weight` is λ's grid."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from pydantic import Field

from headstart.ml.strategies.base import UNLABELLED_TARGET, register
from headstart.ml.strategies.objective import ObjectiveKnobs, ObjectiveStrategy, RelationalObjective


class RKDKnobs(ObjectiveKnobs):
    angle_weight: float = Field(2.0, ge=0)  # the angle-wise term's weight beside the distance-wise term's 1


def _distances(embeddings: torch.Tensor) -> torch.Tensor:
    """ψ_D: the pairwise Euclidean distances of a batch, divided by their mean over the pairs i ≠ j."""
    distances = torch.cdist(embeddings, embeddings)
    off_diagonal = ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    return distances / distances[off_diagonal].mean().clamp_min(1e-12)


def _angles(embeddings: torch.Tensor) -> torch.Tensor:
    """ψ_A: cos∠(e_i − e_j, e_k − e_j) for every triplet (j the vertex), as Park et al. compute it."""
    differences = F.normalize(embeddings.unsqueeze(0) - embeddings.unsqueeze(1), p=2, dim=2)
    return torch.bmm(differences, differences.transpose(1, 2))


def rkd_loss(student: torch.Tensor, teacher: torch.Tensor, angle_weight: float = 2.0) -> torch.Tensor:
    """The Huber loss between the student's and the teacher's distance-wise potentials ψ_D (pairwise
    distances over their batch mean) plus `angle_weight` × that of the angle-wise potentials ψ_A
    (triplet angles). Both potentials are invariant to a scale of the embeddings, so the loss is zero
    when the student's embeddings are the teacher's up to a scale. The teacher gets no gradient. In
    fp32 even under autocast: the potentials are differences of nearby numbers."""
    student, teacher = student.float(), teacher.detach().float()
    with torch.autocast(student.device.type, enabled=False):
        distance = F.smooth_l1_loss(_distances(student), _distances(teacher))
        angle = F.smooth_l1_loss(_angles(student), _angles(teacher))
    return distance + angle_weight * angle


@register
class RKD(ObjectiveStrategy):
    name = "rkd"
    family = "relational"
    Knobs = RKDKnobs
    uses = ("source model embeddings", UNLABELLED_TARGET)

    def objective(self, task, config, model, report):
        loss = partial(rkd_loss, angle_weight=config.knobs.angle_weight)
        return RelationalObjective.for_strategy(task, config, self.weight(config), loss), 0
