"""TrAdaBoost (Dai et al., ICML 2007): instance transfer by boosting, over a linear classifier on the
frozen source model's features, so that a round costs one scikit-learn fit.

The source and target examples are weighted; each round a learner is fitted to the weighted union,
and its error ε_t is measured on the target examples only. A misclassified source example's weight
is multiplied by β = 1/(1 + √(2 ln n / N)) (down: it looks unlike the target), a misclassified target
example's by β_t⁻¹ (up, as AdaBoost does). The final hypothesis is the weighted vote of the learners
of rounds ⌈N/2⌉ … N, learner t weighted by log(1/β_t).

The paper is binary (β_t = ε_t/(1 − ε_t), ε_t < 1/2). For K classes we use the SAMME form (Zhu et
al., 2009): the error is misclassification, β_t = ε_t / ((1 − ε_t)(K − 1)), so that log(1/β_t) is
SAMME's learner weight log((1 − ε_t)/ε_t) + log(K − 1), and ε_t is held below 1 − 1/K (chance),
where β_t = 1: such a learner changes no weight and gets no vote. K = 2 gives the paper's rule.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

SMALLEST_ERROR = 1e-10  # a learner with no target error gets the vote of one with this error


def source_factor(source_count: int, rounds: int) -> float:
    """β = 1/(1 + √(2 ln n / N)): what a misclassified source example's weight is multiplied by."""
    return 1.0 / (1.0 + math.sqrt(2.0 * math.log(source_count) / rounds))


def learner_beta(error: float, num_classes: int) -> float:
    """β_t = ε_t / ((1 − ε_t)(K − 1)), with ε_t held within [SMALLEST_ERROR, 1 − 1/K]."""
    error = min(max(error, SMALLEST_ERROR), 1.0 - 1.0 / num_classes)
    return error / ((1.0 - error) * (num_classes - 1))


def tradaboost_update(
    weights: np.ndarray, misclassified: np.ndarray, source_count: int, beta: float, num_classes: int
) -> tuple[np.ndarray, float, float]:
    """One round's reweighting. `weights` and `misclassified` hold the n source examples first, then the
    target ones. Returns the new weights (unnormalised, as the paper writes them), ε_t and β_t."""
    weights, wrong = np.asarray(weights, dtype=np.float64), np.asarray(misclassified, dtype=np.float64)
    target = slice(source_count, None)
    error = float((weights[target] * wrong[target]).sum() / weights[target].sum())
    beta_t = learner_beta(error, num_classes)
    updated = weights.copy()
    updated[:source_count] *= beta ** wrong[:source_count]
    updated[target] *= beta_t ** -wrong[target]
    return updated, error, beta_t


@dataclass
class Boosted:
    """What the rounds made: every learner and its β_t; the final hypothesis votes with `voting`."""

    learners: list[Any] = field(default_factory=list)
    betas: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)  # ε_t on the target examples
    source_shares: list[float] = field(default_factory=list)  # the source's share of the weight after round t

    @property
    def voting(self) -> range:
        """The rounds ⌈N/2⌉ … N (0-based indices) whose learners vote in the final hypothesis."""
        rounds = len(self.learners)
        return range(math.ceil(rounds / 2) - 1, rounds)

    def vote_weights(self) -> list[float]:
        return [math.log(1.0 / self.betas[t]) for t in self.voting]


def tradaboost(
    source: tuple[np.ndarray, np.ndarray],
    target: tuple[np.ndarray, np.ndarray],
    rounds: int,
    num_classes: int,
    make_learner: Callable[[], Any],
) -> Boosted:
    """N rounds of TrAdaBoost from equal weights over the n + m examples. `make_learner` returns a fresh
    scikit-learn classifier taking `sample_weight`; it gets the weights scaled to mean 1, so its
    regularisation weighs against the data as it would unweighted. A learner that can (`warm_start`)
    starts each round from the last round's weights: an L2-penalised logistic loss has one minimum, which
    the solver reaches to its tolerance in a tenth of the time (10 rounds on 4,100 × 64 features: 3 s
    against 26 s); examples left with almost no weight can then fall either way, as between two solvers."""
    features = np.concatenate([source[0], target[0]]).astype(np.float64)
    labels = np.concatenate([source[1], target[1]])
    source_count = len(source[0])
    beta = source_factor(source_count, rounds)
    weights = np.full(len(labels), 1.0 / len(labels))
    boosted = Boosted()
    learner = make_learner()
    if "warm_start" in getattr(learner, "get_params", dict)():
        learner.set_params(warm_start=True)
    for _ in range(rounds):
        learner = copy.deepcopy(learner).fit(features, labels, sample_weight=weights * len(weights) / weights.sum())
        misclassified = learner.predict(features) != labels
        weights, error, beta_t = tradaboost_update(weights, misclassified, source_count, beta, num_classes)
        weights = weights / weights.sum()  # the next round's distribution p_t; the ratios are the paper's
        boosted.learners.append(learner)
        boosted.betas.append(beta_t)
        boosted.errors.append(error)
        boosted.source_shares.append(float(weights[:source_count].sum()))
    return boosted


class BoostedVote(nn.Module):
    """TrAdaBoost's final hypothesis as a module, stored and evaluated like every other model: linear
    learners on the frozen body's features, each voting for its predicted class with weight log(1/β_t).
    Its scores are the log vote shares (smoothed, as k-NN's are, so that NLL is finite)."""

    def __init__(self, body: dict[str, Any], learners: int, num_classes: int, **_: object) -> None:
        from headstart.ml.models import build_model

        super().__init__()
        self.body = build_model({**body, "num_classes": num_classes})
        self.body.head = nn.Identity()  # the learners are the heads
        self.body.requires_grad_(False)
        self.num_classes = num_classes
        self.learners = nn.Linear(self.body.num_features, learners * num_classes)
        self.register_buffer("vote_weights", torch.ones(learners))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.learners(self.forward_features(images).float()).view(len(images), -1, self.num_classes)
        votes = nn.functional.one_hot(scores.argmax(2), self.num_classes).float()
        weights = self.vote_weights if float(self.vote_weights.sum()) > 0 else torch.ones_like(self.vote_weights)
        shares = (votes * weights[None, :, None]).sum(1) / weights.sum()
        return torch.log(shares * (1 - 1e-3) + 1e-3 / self.num_classes)
