"""`tradaboost`, TrAdaBoost (Dai et al., ICML 2007), instance-based: boosting over a linear classifier on the
frozen source model's features of the source and target images, so that a round costs one
scikit-learn fit; its grid is the number of rounds N. Source labels are read as target labels: the
source's classes must be the target's (else it is left out, named).

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
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from sklearn.preprocessing import StandardScaler

from headstart.ml.models.boosted_vote import BoostedVote
from headstart.ml.strategies.base import SOURCE_IMAGES, extract_features, register
from headstart.ml.strategies.linear_classifier import (
    LinearClassifier,
    LinearClassifierKnobs,
    folded_linear,
    make_linear_classifier,
)
from headstart.ml.training import model_device, resolve_device

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


class TrAdaBoostKnobs(LinearClassifierKnobs):
    boosting_rounds: list[Annotated[int, Field(ge=1)]] = Field([5, 10, 20], min_length=1)  # N: its grid


def vote_of(task, config, model, model_config, boosted: Boosted, scaler) -> tuple[BoostedVote, dict]:
    """The final hypothesis as a module over the frozen body, and its config."""
    voting = list(boosted.voting)
    vote_config = {
        "name": "boosted_vote",
        "in_channels": model_config.get("in_channels", 1),
        "num_classes": task.num_classes,
        "learners": len(voting),
        "body": {k: v for k, v in model_config.items() if k != "num_classes"},
    }
    vote = BoostedVote(**{k: v for k, v in vote_config.items() if k != "name"})
    vote.body.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head.")})
    layers = [folded_linear([scaler], boosted.learners[t], task.num_classes) for t in voting]
    with torch.no_grad():
        vote.learners.weight.copy_(torch.cat([weight for weight, _ in layers]))
        vote.learners.bias.copy_(torch.cat([bias for _, bias in layers]))
        vote.vote_weights.copy_(torch.as_tensor(boosted.vote_weights()))
    return vote.to(model_device(model)), vote_config


@register
class TrAdaBoost(LinearClassifier):
    name = "tradaboost"
    family = "instance-based"
    Knobs = TrAdaBoostKnobs
    uses = (SOURCE_IMAGES,)

    def check(self, spec, model, procedure):
        super().check(spec, model, procedure)
        if spec.copy_blocks != "all":
            raise ValueError("tradaboost boosts on the source model's features: copy_blocks: all")

    def not_applicable(self, task):
        if not task.shared_label_space:
            return "the source's classes are not the target's (TrAdaBoost boosts one classifier over both)"
        return None

    def grid(self, knobs, lr_scales):
        return [{"boosting_rounds": n} for n in knobs.boosting_rounds]

    def rounds(self, config) -> int:
        return int(config.tuned("boosting_rounds", config.knobs.boosting_rounds[0]))

    def train(self, task, config, result, checkpoint):
        """Its rounds over the frozen body's features of the source and the target training images."""
        if task.source is None or not task.shared_label_space:
            raise ValueError(
                "tradaboost trains on source images labelled with the target's classes, and the source's classes "
                "are not the target's: leave it out (transfer.leave_out: [tradaboost])"
            )
        model = result.model.to(resolve_device(config.training.device))
        target_features = extract_features(model, task.train[0]).double().numpy()
        source_features = task.source_features().double().numpy()
        scaler = StandardScaler().fit(np.concatenate([source_features, target_features]))
        boosted = tradaboost(
            (scaler.transform(source_features), task.source[1].numpy()),
            (scaler.transform(target_features), task.train[1].numpy()),
            self.rounds(config),
            task.num_classes,
            lambda: make_linear_classifier(config),
        )
        result.model, result.config = vote_of(task, config, model, result.config, boosted, scaler)
        result.images_seen = len(task.source[0])  # + the target images, counted after training
        result.history = [
            {"epoch": t + 1, "target_error": error, "learner_weight": math.log(1 / beta), "source_weight_share": share}
            for t, (error, beta, share) in enumerate(zip(boosted.errors, boosted.betas, boosted.source_shares))
        ]

    def record_history(self, result, measured):
        """Each round's ε_t and vote; the final hypothesis's validation on the last round."""
        result.history[-1].update(validation_loss=measured["nll"], validation_accuracy=measured["accuracy"])

    def price(self, meter, plan, config, scale):
        """Every round priced as a cold fit: its rounds start warm, so an upper bound."""
        source = len(meter.task.source[0]) if meter.task.source is not None else 0
        fits = self.rounds(config) * meter.fit_seconds(config, plan.train + source, with_source=True)
        return 0, 0.0, meter.passes(config, plan.train, scale) + meter.passes(config, plan.validation, scale) + fits

    def once_price(self, meter, plan, scale):
        """The source features, once per task."""
        source = len(meter.task.source[0]) if meter.task.source is not None else 0
        return meter.passes(plan.candidates[0], source, scale)
