"""`coral`, Deep CORAL (Sun & Saenko, ECCV 2016 workshops), feature-based: the target and source
cross-entropy + λ·the distance between the feature covariances of the source batch and the (labelled +
unlabelled) target batch. `weight` is λ's grid."""

from __future__ import annotations

import torch

from headstart.ml.strategies.base import SOURCE_IMAGES, UNLABELLED_TARGET, register
from headstart.ml.strategies.objective import DomainObjective, ObjectiveStrategy


def coral_loss(source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """‖C_S − C_T‖²_F / (4d²) between the d×d feature covariances of the two batches (Deep CORAL)."""
    d = source_features.shape[1]
    difference = torch.cov(source_features.float().T) - torch.cov(target_features.float().T)
    return difference.pow(2).sum() / (4 * d * d)


class CoralObjective(DomainObjective):
    def adaptation_terms(self, batch):
        alignment = coral_loss(batch.source, batch.target_features())
        return [self.source_loss(batch), self.weight * alignment]


@register
class Coral(ObjectiveStrategy):
    name = "coral"
    family = "feature-based"
    uses = (SOURCE_IMAGES, UNLABELLED_TARGET)

    def objective(self, task, config, model, report):
        settings = CoralObjective.common_settings(task, config, task.source_model())
        return CoralObjective(task.source, task.unlabelled, self.weight(config), **settings), 0
