"""`fixmatch` (Sohn et al., NeurIPS 2020), self-training on the unlabelled target images: each step also
draws μ·B unlabelled images; the model's prediction on a weak view of each (the training's own
augmentation) is its pseudo-label when its confidence max p reaches τ, and the model is trained to
predict that label on a strong view of the same image (a larger affine, a contrast change and Cutout):

    loss = CE(labelled batch) + λ_u · (1/μB) Σ_u 1(max p_u ≥ τ) · CE(argmax p_u, model(strong(u)))

normalised over all μB unlabelled images, as eq. (4) of the paper (not over the kept ones only). It
fine-tunes from the source, so it is transfer and semi-supervision at once. `weight` is λ_u's grid.
The strong view stands in for RandAugment on small grey images: rotations and shifts beyond the weak
view's, a random contrast, and a Cutout square (DeVries & Taylor 2017) of grey.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from headstart.ml.strategies.base import UNLABELLED_TARGET, register
from headstart.ml.strategies.objective import ExtraBatches, ObjectiveKnobs, ObjectiveStrategy, augmentation
from headstart.ml.training import CrossEntropyObjective, StepParts, augment_images, scale_images


class FixMatchKnobs(ObjectiveKnobs):
    threshold: float = Field(0.95, gt=0, le=1)  # τ: a pseudo-label is kept at or above this confidence
    unlabelled_ratio: int = Field(7, ge=1)  # μ: unlabelled images per labelled one in a step
    strong_rotation_deg: float = Field(30.0, ge=0)  # the strong view's affine
    strong_shift: float = Field(0.2, ge=0)
    cutout: float = Field(0.5, ge=0, le=1)  # the side of the Cutout square, a share of the image's


def pseudo_labels(weak_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax p, mask): each weak view's predicted class, and whether its confidence max p ≥ τ."""
    probabilities = weak_logits.detach().float().softmax(1)
    confidence, labels = probabilities.max(1)
    return labels, confidence >= threshold


def unlabelled_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """(1/μB) Σ 1(max p ≥ τ)·CE(argmax p, strong): the mask's mean over every unlabelled image."""
    labels, mask = pseudo_labels(weak_logits, threshold)
    losses = F.cross_entropy(strong_logits.float(), labels, reduction="none")
    return (losses * mask.float()).mean()


def strong_view(images: torch.Tensor, generator: torch.Generator, knobs: FixMatchKnobs) -> torch.Tensor:
    """A larger affine than the weak view's, a random contrast in [0.5, 1.5] about each image's mean,
    and a grey Cutout square at a random place."""
    images = augment_images(images, generator, knobs.strong_rotation_deg, knobs.strong_shift)
    count, _, height, width = images.shape
    contrast = 0.5 + torch.rand(count, 1, 1, 1, generator=generator).to(images.device)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean).clamp(0, 1)
    side = round(knobs.cutout * min(height, width))
    if side > 0:
        rows = torch.randint(0, height - side + 1, (count,), generator=generator).tolist()
        columns = torch.randint(0, width - side + 1, (count,), generator=generator).tolist()
        images = images.clone()
        for index, (row, column) in enumerate(zip(rows, columns)):
            images[index, :, row : row + side, column : column + side] = 0.5
    return images


class FixMatchObjective(CrossEntropyObjective):
    """The labelled batch, the weak and the strong views of μ·B unlabelled images in one forward pass
    (batch norm sees them together, as in the paper); the pseudo-labels get no gradient."""

    def __init__(
        self, unlabelled: torch.Tensor, weight: float, knobs: FixMatchKnobs, *, batch_size: int, seed: int, augment
    ) -> None:
        super().__init__()
        self.unlabelled, self.weight, self.knobs = unlabelled, weight, knobs
        self.extra = ExtraBatches(batch_size * knobs.unlabelled_ratio, seed, augment)  # the weak view

    def loss(self, model, inputs, targets):
        index = self.extra.draw(self.unlabelled)
        weak = self.extra.batch(self.unlabelled, index, inputs)
        strong = strong_view(scale_images(self.unlabelled[index].to(inputs.device)), self.extra.generator, self.knobs)
        logits = model(torch.cat([inputs, weak, strong]))
        outputs, weak_logits, strong_logits = logits.split([len(inputs), len(weak), len(strong)])
        total = F.cross_entropy(outputs.float(), targets)
        total = total + self.weight * unlabelled_loss(weak_logits, strong_logits, self.knobs.threshold)
        return total, StepParts(outputs, extra_images=len(weak) + len(strong))

    def get_extra_state(self) -> dict:
        return {"generator": self.extra.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.extra.generator.set_state(state["generator"])


@register
class FixMatch(ObjectiveStrategy):
    name = "fixmatch"
    family = "self-training"
    Knobs = FixMatchKnobs
    uses = (UNLABELLED_TARGET,)

    def objective(self, task, config, model, report):
        if task.unlabelled is None or not len(task.unlabelled):
            raise ValueError("fixmatch trains on unlabelled target images, and none were given")
        training = config.training
        settings = {"batch_size": training.batch_size, "seed": training.seed, "augment": augmentation(config)}
        return FixMatchObjective(task.unlabelled, self.weight(config), config.knobs, **settings), 0
