"""`bss`, Batch Spectral Shrinkage (Chen et al., NeurIPS 2019), a fine-tuning regulariser: fine-tune
everything from the source and add η·Σ_{i=1..k} σ²_{b+1−i}, the k smallest squared singular values of
the batch's feature matrix (b×d), to the loss. Fine-tuning on few labels amplifies the feature
directions with little transferable signal (the small singular values); shrinking them curbs that
negative transfer. `weight` is η's grid (the paper: 1e-3); `smallest` is k (the paper: 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from headstart.ml.strategies.base import register
from headstart.ml.strategies.objective import ObjectiveKnobs, ObjectiveStrategy
from headstart.ml.training import CrossEntropyObjective, StepParts


class BSSKnobs(ObjectiveKnobs):
    smallest: int = Field(1, ge=1)  # k: how many of the smallest singular values are shrunk


def bss_penalty(features: torch.Tensor, smallest: int) -> torch.Tensor:
    """Σ of the `smallest` smallest squared singular values of the b×d feature batch (in fp32)."""
    singular_values = torch.linalg.svdvals(features.float())  # descending, min(b, d) of them
    return singular_values[-smallest:].pow(2).sum()


class BSSObjective(CrossEntropyObjective):
    """Cross-entropy + η·the BSS penalty of the batch's features (`forward_features`, before the head)."""

    reaches_past_forward = True

    def __init__(self, weight: float, smallest: int) -> None:
        super().__init__()
        self.weight, self.smallest = weight, smallest

    def loss(self, model, inputs, targets):
        features = model.forward_features(inputs)
        outputs = model.head(features)
        penalty = bss_penalty(features, self.smallest)
        return F.cross_entropy(outputs.float(), targets) + self.weight * penalty, StepParts(outputs)


@register
class BSS(ObjectiveStrategy):
    name = "bss"
    family = "fine-tuning regulariser"
    Knobs = BSSKnobs

    def objective(self, task, config, model, report):
        return BSSObjective(self.weight(config), config.knobs.smallest), 0
