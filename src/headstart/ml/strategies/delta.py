"""`delta`, DEep Learning Transfer using Feature Map with Attention (Li et al., ICLR 2019), a fine-tuning
regulariser: fine-tune everything, keeping the outer layer's features (not the weights) near the frozen
source model's, channel j weighted by W_j, how much removing it hurts the source features' fit to the
target labels:  α·mean_x Σ_j W_j·(FM_j(w, x) − FM_j(w_source, x))²  +  β/2·‖w_head‖²,
with W = softmax_j(L(features without channel j) − L(features)), L the cross-entropy of a logistic
regression fitted on the source model's features of the target training images (computed once per
task). FM_j here is channel j of the outer layer after global pooling (`forward_features`). The
penalty replaces weight decay, as L2-SP's does. `weight` is α's grid; `head_weight` is β."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from headstart.ml.strategies.base import extract_features, register
from headstart.ml.strategies.objective import Frozen, ObjectiveKnobs, ObjectiveStrategy, ObjectiveWithReferences
from headstart.ml.training import StepParts, bare_model


class DeltaKnobs(ObjectiveKnobs):
    head_weight: float = Field(0.01, ge=0)  # β on the new head


def channel_attention(features: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    """W_j = softmax_j of the rise in cross-entropy when channel j of the source features is zeroed,
    for a logistic regression fitted on them (DELTA's supervised attention)."""
    classifier = LogisticRegression(max_iter=2000).fit(features, labels)
    classes = classifier.classes_
    base = log_loss(labels, classifier.predict_proba(features), labels=classes)
    rises = []
    for channel in range(features.shape[1]):
        removed = features.copy()
        removed[:, channel] = 0.0
        rises.append(log_loss(labels, classifier.predict_proba(removed), labels=classes) - base)
    return torch.as_tensor(softmax(np.asarray(rises)), dtype=torch.float32)


def delta_penalty(student: torch.Tensor, teacher: torch.Tensor, attention: torch.Tensor, alpha: float) -> torch.Tensor:
    """α · the batch mean of Σ_j W_j·(student_j − teacher_j)² over the channels j."""
    squared = (student.float() - teacher.detach().float()).pow(2)
    return alpha * (squared * attention).sum(1).mean()


def head_penalty(model, beta: float) -> torch.Tensor:
    """β/2·‖w‖² over the new head's trainable parameters."""
    head = bare_model(model).head
    zero = next(head.parameters()).new_zeros(())
    return beta / 2 * sum((p.pow(2).sum() for p in head.parameters() if p.requires_grad), zero)


class DeltaObjective(ObjectiveWithReferences):
    reaches_past_forward = True

    def __init__(self, source_model, attention: torch.Tensor, alpha: float, beta: float) -> None:
        super().__init__()
        self.teacher = Frozen(source_model)
        self.register_buffer("attention", attention)
        self.alpha, self.beta = alpha, beta

    def loss(self, model, inputs, targets):
        features = model.forward_features(inputs)
        outputs = model.head(features)
        with torch.no_grad():
            teacher = self.teacher.module.forward_features(inputs)
        total = F.cross_entropy(outputs.float(), targets) + delta_penalty(features, teacher, self.attention, self.alpha)
        return total + head_penalty(model, self.beta), StepParts(outputs)


@register
class Delta(ObjectiveStrategy):
    name = "delta"
    family = "fine-tuning regulariser"
    Knobs = DeltaKnobs
    uses = ("source model features",)
    needs_source_weights = True
    replaces_weight_decay = True

    def objective(self, task, config, model, report):
        source_model = task.source_model()

        def attention() -> torch.Tensor:
            features = extract_features(source_model, task.train[0]).numpy()
            return channel_attention(features, task.train[1].numpy())

        weights = task.once("delta_attention", attention)
        return DeltaObjective(source_model, weights, self.weight(config), config.knobs.head_weight), 0
