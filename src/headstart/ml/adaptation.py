"""Transfer beyond copying weights: the objectives `fit` optimises for the other families of transfer.

- conservative training: `l2_sp` (Li et al., ICML 2018) pulls the transferred body toward the source
  weights; `lwf` (Li & Hoiem, 2016) keeps the source head and distils the frozen source model into it;
- feature-based: `coral` (Deep CORAL, Sun & Saenko 2016) aligns the feature covariances of source and
  target batches; `dann` (Ganin et al., JMLR 2016) trains a domain classifier behind a gradient
  reversal layer;
- instance-based: `importance_weighting` (Shimodaira 2000; Sugiyama et al.) trains on the source
  reweighted by w(x) = p_T(x)/p_S(x), estimated by a domain classifier (TrAdaBoost, the boosting
  form, is a procedure of its own: headstart.ml.boosting);
- relational: `rkd` (Park et al., CVPR 2019) carries the frozen source model's pairwise distances and
  triplet angles between the embeddings of the target images to the target model;
  `similarity_preserving` (Tung & Mori, ICCV 2019) its batch similarity matrix.

Each objective adds its terms to the target's cross-entropy; `fit` stays the one training loop.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from headstart.ml.config import Settings
from headstart.ml.training import (
    CrossEntropyObjective,
    StepParts,
    augment_images,
    bare_model,
    scale_images,
    steps_per_epoch,
)

SOURCE_IMAGES, UNLABELLED_TARGET = "source images", "unlabelled target"


@dataclass(frozen=True)
class AdaptationKind:
    """One adaptation kind, declared once: its family, what it uses at target time besides the target
    labels and the source model's weights (the comparison's `uses` column and the data sets its node
    gets derive from it), whether its pull toward the source replaces weight decay, and its objective
    (`headstart.ml.strategies` builds it by `objective.__name__`)."""

    family: str
    uses: tuple[str, ...]
    objective: str
    replaces_weight_decay: bool = False


ADAPTATION_KINDS: dict[str, AdaptationKind] = {
    "l2_sp": AdaptationKind("conservative", (), "L2SPObjective", replaces_weight_decay=True),
    "lwf": AdaptationKind("conservative", ("source model outputs",), "LwFObjective"),
    "coral": AdaptationKind("feature-based", (SOURCE_IMAGES, UNLABELLED_TARGET), "CoralObjective"),
    "dann": AdaptationKind("feature-based", (SOURCE_IMAGES, UNLABELLED_TARGET), "DannObjective"),
    "importance_weighting": AdaptationKind(
        "instance-based", (SOURCE_IMAGES, UNLABELLED_TARGET), "WeightedSourceObjective"
    ),
    "rkd": AdaptationKind("relational", ("source model embeddings", UNLABELLED_TARGET), "RelationalObjective"),
    "similarity_preserving": AdaptationKind(
        "relational", ("source model embeddings", UNLABELLED_TARGET), "RelationalObjective"
    ),
}
ADAPTATIONS = tuple(ADAPTATION_KINDS)
Adaptation = Literal[ADAPTATIONS]  # the kinds conf may name


def uses_of(kind: str | None) -> tuple[str, ...]:
    return ADAPTATION_KINDS[kind].uses if kind else ()


class AdaptationConfig(Settings):
    """The objective of one trained candidate. `weight` is the tuned one: α of l2_sp, λ of lwf's
    distillation, λ of coral's alignment, the largest gradient-reversal λ of dann, the weight of
    importance_weighting's weighted source loss, λ of the relational loss (conf gives it as a grid)."""

    kind: Adaptation
    weight: float = Field(ge=0)
    head_weight: float = Field(0.01, ge=0)  # l2_sp's β on the new head
    temperature: float = Field(2.0, gt=0)  # lwf
    clip: float = Field(10.0, gt=0)  # importance weights are clipped here (then scaled to mean 1 over the source)
    domain_hidden: int = Field(64, ge=1)  # dann's domain classifier: one hidden layer this wide
    angle_weight: float = Field(2.0, ge=0)  # rkd: the angle-wise term's weight beside the distance-wise term's 1


# --- The terms, each by its paper's definition (see shared/REFERENCE.md) -----------------------------


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


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) ‖ softmax(student/T)), mean over the batch (LwF's term; zero when they agree)."""
    return F.kl_div(
        F.log_softmax(student_logits.float() / temperature, dim=1),
        F.log_softmax(teacher_logits.float() / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def coral_loss(source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """‖C_S − C_T‖²_F / (4d²) between the d×d feature covariances of the two batches (Deep CORAL)."""
    d = source_features.shape[1]
    difference = torch.cov(source_features.float().T) - torch.cov(target_features.float().T)
    return difference.pow(2).sum() / (4 * d * d)


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


def importance_weights(source_features: np.ndarray, target_features: np.ndarray, clip: float) -> torch.Tensor:
    """w(x) = (n_S/n_T)·P(target|x)/P(source|x) for each source image, from a logistic-regression
    domain classifier on standardised features; clipped at `clip`, then scaled to mean 1 so the
    weighted source loss keeps the scale of an unweighted one."""
    features = np.concatenate([source_features, target_features])
    domains = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, domains)
    p_target = classifier.predict_proba(source_features)[:, 1].clip(1e-6, 1 - 1e-6)
    weights = (len(source_features) / len(target_features)) * p_target / (1 - p_target)
    weights = np.minimum(weights, clip)
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32)


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
    """Relational knowledge distillation (Park et al., CVPR 2019): the Huber loss between the student's
    and the teacher's distance-wise potentials ψ_D (pairwise distances over their batch mean) plus
    `angle_weight` × that of the angle-wise potentials ψ_A (triplet angles). Both potentials are
    invariant to a scale of the embeddings, so the loss is zero when the student's embeddings are
    the teacher's up to a scale. The teacher gets no gradient. In fp32 even under autocast: the
    potentials are differences of nearby numbers."""
    student, teacher = student.float(), teacher.detach().float()
    with torch.autocast(student.device.type, enabled=False):
        distance = F.smooth_l1_loss(_distances(student), _distances(teacher))
        angle = F.smooth_l1_loss(_angles(student), _angles(teacher))
    return distance + angle_weight * angle


def similarity_preserving_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving distillation (Tung & Mori, ICCV 2019): ‖G_S − G_T‖²_F / b² between the
    row-normalised b×b batch similarity matrices G = normalise(F Fᵀ) of the two models' embeddings."""
    student, teacher = student.float().flatten(1), teacher.detach().float().flatten(1)
    with torch.autocast(student.device.type, enabled=False):  # in fp32, as rkd_loss
        similarity_student = F.normalize(student @ student.T, p=2, dim=1)
        similarity_teacher = F.normalize(teacher @ teacher.T, p=2, dim=1)
        return (similarity_student - similarity_teacher).pow(2).sum() / len(student) ** 2


# --- Objectives for `fit` ---------------------------------------------------------------------------


class _Frozen:
    """A frozen module an objective reads (the source model): moved with the objective, never in its
    state_dict (it is catalogued already), never trained."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval().requires_grad_(False)

    def __call__(self, *args):
        return self.module(*args)


class ObjectiveWithReferences(CrossEntropyObjective):
    """Moves its frozen references (`_Frozen` attributes, dicts of anchor tensors) with `.to()`."""

    def _apply(self, fn, recurse=True):
        for name, value in vars(self).items():
            if isinstance(value, _Frozen):
                value.module._apply(fn)
            elif name == "anchors":
                self.anchors = {key: fn(tensor) for key, tensor in value.items()}
        return super()._apply(fn, recurse)


class L2SPObjective(ObjectiveWithReferences):
    """Cross-entropy + the L2-SP penalty, in place of plain weight decay (the caller sets decay to 0)."""

    def __init__(self, anchors: dict[str, torch.Tensor], config: AdaptationConfig) -> None:
        super().__init__()
        self.anchors, self.config = anchors, config

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        """Anchored at the source values of the transferred parameters that train."""
        trainable = dict(model.named_parameters())
        anchors = {name: task.source_state[name].detach().float() for name in report.copied if name in trainable}
        return cls(anchors, config.adaptation), 0

    def loss(self, model, inputs, targets):
        loss, parts = super().loss(model, inputs, targets)
        penalty = l2_sp_penalty(bare_model(model), self.anchors, self.config.weight, self.config.head_weight)
        return loss + penalty, parts


class LwFObjective(ObjectiveWithReferences):
    """Learning without forgetting: the source head stays on the body and trains too; its outputs on the
    target images are held near the frozen source model's by λ·KL at temperature T."""

    reaches_past_forward = True

    def __init__(self, source_model: nn.Module, config: AdaptationConfig, head_lr: float) -> None:
        super().__init__()
        self.teacher = _Frozen(source_model)
        self.source_head = copy.deepcopy(source_model.head).requires_grad_(True)
        self.config, self.head_lr = config, head_lr

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        return cls(source_model, config.adaptation, config.training.head_lr), 0

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.source_head.parameters()), "lr": self.head_lr, "weight_decay": 0.0}]

    def loss(self, model, inputs, targets):
        features = model.forward_features(inputs)
        student = self.source_head(features)
        with torch.no_grad():
            teacher = self.teacher(inputs)
        outputs = model.head(features)
        loss = F.cross_entropy(outputs.float(), targets)
        return loss + self.config.weight * distillation_loss(student, teacher, self.config.temperature), StepParts(
            outputs
        )


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
        config: AdaptationConfig,
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
        self.config, self.batch_size, self.head_lr, self.total_steps = config, batch_size, head_lr, total_steps
        self.source_head = copy.deepcopy(source_head).requires_grad_(True) if source_head is not None else None
        self.extra = ExtraBatches(batch_size, seed, augment)  # its own draws: the target's stay as they were
        self.steps = 0

    @classmethod
    def common_settings(cls, task, config, source_model) -> dict:
        """What every domain objective takes from the strategy: batches, seed, augmentation, the source head."""
        training = config.training
        if task.source is None:
            raise ValueError(f"{config.adaptation.kind} trains on source images, and none were given")
        return {
            "batch_size": training.batch_size,
            "seed": training.seed,
            "source_head": None if task.shared_label_space else source_model.head,
            "head_lr": training.head_lr,
            "total_steps": training.epochs * steps_per_epoch(len(task.train[0]), training),
            "augment": (training.augment.max_rotation_deg, training.augment.max_shift),  # the target batch's
        }

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        return cls(
            task.source, task.unlabelled, config.adaptation, **cls.common_settings(task, config, source_model)
        ), 0

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


class CoralObjective(DomainObjective):
    """Target and source cross-entropy + λ·Deep CORAL between source and (labelled + unlabelled) target features."""

    def adaptation_terms(self, batch):
        alignment = coral_loss(batch.source, batch.target_features())
        return [self.source_loss(batch), self.config.weight * alignment]


class DannObjective(DomainObjective):
    """Target and source cross-entropy + a domain classifier's loss through the gradient reversal layer,
    whose λ follows Ganin et al.'s schedule up to `weight`."""

    def __init__(self, *args, features: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hidden = self.config.domain_hidden
        self.domain_classifier = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        settings = cls.common_settings(task, config, source_model)
        return cls(task.source, task.unlabelled, config.adaptation, features=model.num_features, **settings), 0

    def adaptation_terms(self, batch):
        target = batch.target_features()
        scale = self.config.weight * dann_schedule(min(self.steps / max(self.total_steps, 1), 1.0))
        logits = self.domain_classifier(reverse_gradient(torch.cat([batch.source, target]), scale))
        domains = torch.cat([logits.new_zeros(len(batch.source)), logits.new_ones(len(target))])
        domain_loss = F.binary_cross_entropy_with_logits(logits.float().squeeze(1), domains.float())
        return [self.source_loss(batch), domain_loss]


class WeightedSourceObjective(DomainObjective):
    """Target cross-entropy + weight · the source cross-entropy, each source image weighted by w(x)."""

    uses_unlabelled = False  # the unlabelled images served the domain classifier that made the weights

    def __init__(self, *args, source_weights: torch.Tensor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.source_weights = source_weights

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        """Weights from a domain classifier on the source model's features (the images it saw are returned)."""
        weights, seen = task.importance_weights(config.adaptation.clip)
        settings = cls.common_settings(task, config, source_model)
        return cls(task.source, None, config.adaptation, source_weights=weights, **settings), seen

    def source_loss(self, batch):
        labels = self.source_labels[batch.source_index].to(batch.source_logits.device)
        weights = self.source_weights[batch.source_index].to(batch.source_logits.device)
        return (weights * F.cross_entropy(batch.source_logits.float(), labels, reduction="none")).mean()

    def adaptation_terms(self, batch):
        return [self.config.weight * self.source_loss(batch)]


class RelationalObjective(ObjectiveWithReferences):
    """Target cross-entropy + λ·a relational loss (`rkd` or `similarity_preserving`) between the target
    model's embeddings (`forward_features`) and the frozen source model's embeddings of the same
    images: the labelled batch and a drawn batch of unlabelled target images, augmented alike. The
    two pass through the target model in one pass, so the relations span both."""

    reaches_past_forward = True

    def __init__(
        self,
        source_model: nn.Module,
        unlabelled: torch.Tensor | None,
        config: AdaptationConfig,
        *,
        batch_size: int,
        seed: int,
        augment: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__()
        self.teacher = _Frozen(source_model)
        self.unlabelled = unlabelled if unlabelled is not None and len(unlabelled) else None
        self.config = config
        self.extra = ExtraBatches(batch_size, seed, augment)

    @classmethod
    def for_strategy(cls, task, config, model, report, source_model):
        training = config.training
        augment = (training.augment.max_rotation_deg, training.augment.max_shift)  # the target batch's
        settings = {"batch_size": training.batch_size, "seed": training.seed, "augment": augment}
        return cls(source_model, task.unlabelled, config.adaptation, **settings), 0

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

    def relational_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "rkd":
            return rkd_loss(student, teacher, self.config.angle_weight)
        return similarity_preserving_loss(student, teacher)

    def loss(self, model, inputs, targets):
        student, teacher, extra = self.embeddings(model, inputs)
        outputs = model.head(student[: len(targets)])
        total = F.cross_entropy(outputs.float(), targets) + self.config.weight * self.relational_loss(student, teacher)
        return total, StepParts(outputs, extra_images=extra)

    def get_extra_state(self) -> dict:
        return {"generator": self.extra.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.extra.generator.set_state(state["generator"])
