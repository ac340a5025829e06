"""`importance_weighting` (Shimodaira 2000; Sugiyama et al. 2007), instance-based: the target
cross-entropy + `weight` · the source cross-entropy, each source image weighted by
w(x) = p_T(x)/p_S(x), estimated by a domain classifier on the source model's features of the source and
the (labelled + unlabelled) target images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headstart.ml.strategies.base import SOURCE_IMAGES, UNLABELLED_TARGET, extract_features, register
from headstart.ml.strategies.objective import DomainObjective, ObjectiveKnobs, ObjectiveStrategy


class ImportanceWeightingKnobs(ObjectiveKnobs):
    clip: float = Field(10.0, gt=0)  # importance weights are clipped here (then scaled to mean 1 over the source)


def domain_classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def importance_weights(source_features: np.ndarray, target_features: np.ndarray, clip: float) -> torch.Tensor:
    """w(x) = (n_S/n_T)·P(target|x)/P(source|x) for each source image, from a logistic-regression
    domain classifier on standardised features; clipped at `clip`, then scaled to mean 1 so the
    weighted source loss keeps the scale of an unweighted one."""
    features = np.concatenate([source_features, target_features])
    domains = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    classifier = domain_classifier().fit(features, domains)
    p_target = classifier.predict_proba(source_features)[:, 1].clip(1e-6, 1 - 1e-6)
    weights = (len(source_features) / len(target_features)) * p_target / (1 - p_target)
    weights = np.minimum(weights, clip)
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32)


def task_importance_weights(task, clip: float) -> tuple[torch.Tensor, int]:
    """w(x) for each source image (computed once per task), and the images its domain classifier saw."""

    def compute():
        source_model = task.source_model()
        target_images = task.train[0] if task.unlabelled is None else torch.cat([task.train[0], task.unlabelled])
        source_features = extract_features(source_model, task.source[0]).numpy()
        weights = importance_weights(source_features, extract_features(source_model, target_images).numpy(), clip)
        return weights, len(task.source[0]) + len(target_images)

    return task.once(("importance_weights", clip), compute)


class WeightedSourceObjective(DomainObjective):
    uses_unlabelled = False  # the unlabelled images served the domain classifier that made the weights

    def __init__(self, *args, source_weights: torch.Tensor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.source_weights = source_weights

    def source_loss(self, batch):
        labels = self.source_labels[batch.source_index].to(batch.source_logits.device)
        weights = self.source_weights[batch.source_index].to(batch.source_logits.device)
        return (weights * F.cross_entropy(batch.source_logits.float(), labels, reduction="none")).mean()

    def adaptation_terms(self, batch):
        return [self.weight * self.source_loss(batch)]


@register
class ImportanceWeighting(ObjectiveStrategy):
    name = "importance_weighting"
    family = "instance-based"
    Knobs = ImportanceWeightingKnobs
    uses = (SOURCE_IMAGES, UNLABELLED_TARGET)

    def objective(self, task, config, model, report):
        """Weights from a domain classifier on the source model's features (the images it saw are returned)."""
        source_model = task.source_model()
        weights, seen = task_importance_weights(task, config.knobs.clip)
        settings = WeightedSourceObjective.common_settings(task, config, source_model)
        return WeightedSourceObjective(task.source, None, self.weight(config), source_weights=weights, **settings), seen

    def once_price(self, meter, plan, scale):
        """Its domain classifier, once per task: passes over the source and target images, and its fit."""
        config, task = plan.candidates[0], meter.task
        source = len(task.source[0]) if task.source is not None else 0
        unlabelled = len(task.unlabelled) if task.unlabelled is not None else 0
        seconds = meter.passes(config, source, scale) + meter.passes(config, plan.train + unlabelled, scale)
        return seconds + meter.fit_seconds(config, source + plan.train + unlabelled, with_source=True)

    def fit_pipeline(self, config, shape):
        return domain_classifier()
