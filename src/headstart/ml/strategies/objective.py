"""What the objective strategies share: each is `fit` with an objective of its own, the target's
cross-entropy plus its terms (conservative: l2_sp, lwf; regularisers: bss, delta; feature-based: coral,
dann; instance-based: importance_weighting; relational: rkd, similarity_preserving; self-training:
fixmatch). `fit` stays the one training loop; a strategy's file holds its terms, its objective and its
knobs. Conf names one as `adaptation: {kind: <its name>, weight: [grid], ...its knobs}`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from headstart.ml.strategies.base import Knobs, StrategyConfig
from headstart.ml.strategies.fit import Fit
from headstart.ml.training import (
    CrossEntropyObjective,
    StepParts,
    augment_images,
    fit,
    scale_images,
    steps_per_epoch,
)


class ObjectiveKnobs(Knobs):
    """`weight` is the tuned one (λ, α, ...: each strategy says which), given as its grid, tried beside
    the learning rates."""

    weight: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)


class ObjectiveStrategy(Fit):
    """`fit` with `objective()`'s terms; its `weight` grid is tuned with the learning rates."""

    Knobs: ClassVar[type[Knobs]] = ObjectiveKnobs
    replaces_weight_decay: ClassVar[bool] = False  # its pull toward the source does what weight decay did

    def check(self, spec, model, procedure):
        super().check(spec, model, procedure)
        if procedure != Fit.name:
            raise ValueError(f"adaptation ({self.name}) is trained by procedure: fit, not {procedure}")

    def grid(self, knobs, lr_scales):
        return [{"lr_scale": s, "adaptation_weight": w} for s in lr_scales for w in knobs.weight]

    def weight(self, config: StrategyConfig) -> float:
        return config.tuned("adaptation_weight", config.knobs.weight[0])

    def train(self, task, config, result, checkpoint):
        objective, result.images_seen = self.objective(task, config, result.model, result.report)
        training = config.training
        if self.replaces_weight_decay:
            training = training.model_copy(update={"weight_decay": 0.0})
        result.history = fit(result.model, task.train, task.validation, training, checkpoint, objective).history

    def stackable(self, config):
        return False

    def objective(self, task, config, model, report):
        raise NotImplementedError


def augmentation(config: StrategyConfig) -> tuple[float, float]:
    """The target batch's augmentation, which an objective's extra batches get too."""
    return config.training.augment.max_rotation_deg, config.training.augment.max_shift


class Frozen:
    """A frozen module an objective reads (the source model): moved with the objective, never in its
    state_dict (it is catalogued already), never trained."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval().requires_grad_(False)

    def __call__(self, *args):
        return self.module(*args)


class ObjectiveWithReferences(CrossEntropyObjective):
    """Moves its frozen references (`Frozen` attributes, dicts of anchor tensors) with `.to()`."""

    def _apply(self, fn, recurse=True):
        for name, value in vars(self).items():
            if isinstance(value, Frozen):
                value.module._apply(fn)
            elif name == "anchors":
                self.anchors = {key: fn(tensor) for key, tensor in value.items()}
        return super()._apply(fn, recurse)


class ExtraBatches:
    """The batches an objective draws beside the target batch (source images, unlabelled target
    images), augmented as `fit` augments the target batch, with their own seeded generator, so the
    target batch's draws and augmentation stay what they are without them."""

    def __init__(self, batch_size: int, seed: int, augment: tuple[float, float]) -> None:
        self.batch_size = batch_size
        self.max_rotation_deg, self.max_shift = augment
        self.generator = torch.Generator().manual_seed(seed + 7919)

    def draw(self, images: torch.Tensor) -> torch.Tensor:
        return torch.randint(len(images), (self.batch_size,), generator=self.generator)

    def batch(self, images: torch.Tensor, index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """`images[index]` scaled, augmented, on the device and in the memory format of the target batch `like`."""
        batch = scale_images(images[index].to(like.device))
        if self.max_rotation_deg > 0 or self.max_shift > 0:
            batch = augment_images(batch, self.generator, self.max_rotation_deg, self.max_shift)
        if like.is_contiguous(memory_format=torch.channels_last):
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


@dataclass
class DomainBatch:
    """One step's features of the three domains, and the source logits and labels."""

    target: torch.Tensor  # the labelled target batch's features
    source: torch.Tensor
    unlabelled: torch.Tensor | None
    source_logits: torch.Tensor
    source_index: torch.Tensor

    def target_features(self) -> torch.Tensor:
        """The labelled and the unlabelled target features of this step."""
        return self.target if self.unlabelled is None else torch.cat([self.target, self.unlabelled])


class DomainObjective(CrossEntropyObjective):
    """Each step also draws a batch of labelled source images (and, with `unlabelled`, one of unlabelled
    target images), augmented as the target batch is, and passes them through the body in one pass
    with the target batch, so batch norm sees both domains. Source labels go through the target head
    when source and target share their classes (domain adaptation's setting), else through a
    trainable copy of the source head."""

    uses_unlabelled = True
    reaches_past_forward = True

    def __init__(
        self,
        source: tuple[torch.Tensor, torch.Tensor],
        unlabelled: torch.Tensor | None,
        weight: float,
        *,
        batch_size: int,
        seed: int,
        source_head: nn.Module | None,
        head_lr: float,
        total_steps: int,
        augment: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__()
        self.source_images, self.source_labels = source
        self.unlabelled = unlabelled if self.uses_unlabelled and unlabelled is not None and len(unlabelled) else None
        self.weight, self.batch_size, self.head_lr, self.total_steps = weight, batch_size, head_lr, total_steps
        self.source_head = copy.deepcopy(source_head).requires_grad_(True) if source_head is not None else None
        self.extra = ExtraBatches(batch_size, seed, augment)  # its own draws: the target's stay as they were
        self.steps = 0

    @classmethod
    def common_settings(cls, task, config: StrategyConfig, source_model: nn.Module) -> dict:
        """What every domain objective takes from the strategy: batches, seed, augmentation, the source head."""
        training = config.training
        if task.source is None:
            raise ValueError(f"{config.adaptation} trains on source images, and none were given")
        return {
            "batch_size": training.batch_size,
            "seed": training.seed,
            "source_head": None if task.shared_label_space else source_model.head,
            "head_lr": training.head_lr,
            "total_steps": training.epochs * steps_per_epoch(len(task.train[0]), training),
            "augment": augmentation(config),
        }

    def parameter_groups(self) -> list[dict]:
        parameters = list(self.parameters())
        return [{"params": parameters, "lr": self.head_lr, "weight_decay": 0.0}] if parameters else []

    def domain_batch(self, model, inputs) -> tuple[torch.Tensor, DomainBatch]:
        """The target logits and this step's features of every domain, from one pass through the body."""
        source_index = self.extra.draw(self.source_images)
        parts = [inputs, self.extra.batch(self.source_images, source_index, inputs)]
        if self.unlabelled is not None:
            parts.append(self.extra.batch(self.unlabelled, self.extra.draw(self.unlabelled), inputs))
        features = model.forward_features(torch.cat(parts))
        target, source, *rest = features.split([len(part) for part in parts])
        source_logits = (self.source_head or model.head)(source)
        return model.head(target), DomainBatch(target, source, rest[0] if rest else None, source_logits, source_index)

    def source_loss(self, batch: DomainBatch) -> torch.Tensor:
        labels = self.source_labels[batch.source_index].to(batch.source_logits.device)
        return F.cross_entropy(batch.source_logits.float(), labels)

    def loss(self, model, inputs, targets):
        outputs, batch = self.domain_batch(model, inputs)
        extra = len(batch.source) + (len(batch.unlabelled) if batch.unlabelled is not None else 0)
        total = F.cross_entropy(outputs.float(), targets)
        for term in self.adaptation_terms(batch):  # added one by one, in the order the method writes them
            total = total + term
        return total, StepParts(outputs, extra_images=extra)

    def adaptation_terms(self, batch: DomainBatch) -> list[torch.Tensor]:
        raise NotImplementedError

    def after_step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.steps += 1

    def get_extra_state(self) -> dict:
        return {"generator": self.extra.generator.get_state(), "steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.extra.generator.set_state(state["generator"])
        self.steps = int(state["steps"])


class RelationalObjective(ObjectiveWithReferences):
    """Target cross-entropy + λ·a relational loss between the target model's embeddings
    (`forward_features`) and the frozen source model's embeddings of the same images: the labelled batch
    and a drawn batch of unlabelled target images, augmented alike. The two pass through the target
    model in one pass, so the relations span both."""

    reaches_past_forward = True

    def __init__(
        self,
        source_model: nn.Module,
        unlabelled: torch.Tensor | None,
        weight: float,
        relational_loss,
        *,
        batch_size: int,
        seed: int,
        augment: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__()
        self.teacher = Frozen(source_model)
        self.unlabelled = unlabelled if unlabelled is not None and len(unlabelled) else None
        self.weight, self.relational_loss = weight, relational_loss
        self.extra = ExtraBatches(batch_size, seed, augment)

    @classmethod
    def for_strategy(cls, task, config: StrategyConfig, weight: float, relational_loss) -> RelationalObjective:
        settings = {"batch_size": config.training.batch_size, "seed": config.training.seed}
        return cls(
            task.source_model(), task.unlabelled, weight, relational_loss, augment=augmentation(config), **settings
        )

    def embeddings(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(student, teacher) embeddings of the labelled batch and a drawn unlabelled batch, and the
        number of images drawn besides the labelled ones."""
        labelled = len(inputs)
        if self.unlabelled is not None:
            inputs = torch.cat([inputs, self.extra.batch(self.unlabelled, self.extra.draw(self.unlabelled), inputs)])
        student = model.forward_features(inputs)
        with torch.no_grad():
            teacher = self.teacher.module.forward_features(inputs)
        return student, teacher, len(inputs) - labelled

    def loss(self, model, inputs, targets):
        student, teacher, extra = self.embeddings(model, inputs)
        outputs = model.head(student[: len(targets)])
        total = F.cross_entropy(outputs.float(), targets) + self.weight * self.relational_loss(student, teacher)
        return total, StepParts(outputs, extra_images=extra)

    def get_extra_state(self) -> dict:
        return {"generator": self.extra.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.extra.generator.set_state(state["generator"])
