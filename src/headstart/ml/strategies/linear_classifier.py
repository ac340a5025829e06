"""`linear_classifier`: scikit-learn logistic regression (or a linear SVM) on features extracted once from
the frozen body, folded back into the linear head so every strategy is evaluated alike (the
`feature_svm` row). On `model: pixels` it is a classical reference on the raw pixels
(`pixels_linear_classifier`, headstart.ml.strategies.classical): logistic regression on pixels in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from headstart.ml.strategies.base import (
    Knobs,
    Strategy,
    StrategyConfig,
    StrategyResult,
    extract_features,
    register,
)
from headstart.ml.strategies.classical import Classical, ClassicalKnobs
from headstart.ml.training import resolve_device

CLASSIFIERS = ("logistic_regression", "linear_svm")


class LinearClassifierKnobs(Knobs):
    classifier: Literal[CLASSIFIERS] = "logistic_regression"
    regularisation_c: float = Field(1.0, gt=0)  # scikit-learn's C, inverse regularisation; lr_scale multiplies it


def regularisation(config: StrategyConfig) -> float:
    """The candidate's C: the knob's, times its grid's multiplier (the counterpart of a learning rate)."""
    return config.knobs.regularisation_c * config.lr_scale


def make_linear_classifier(config: StrategyConfig):
    """The scikit-learn linear model of the knob `classifier`, at the candidate's C."""
    if config.knobs.classifier == "logistic_regression":
        return LogisticRegression(C=regularisation(config), max_iter=2000)
    return LinearSVC(C=regularisation(config), max_iter=10000)


def linear_classifier_pipeline(config: StrategyConfig, shape: tuple[int, int], standardise: bool) -> Pipeline:
    """The scikit-learn pipeline of a linear classifier on `shape` (rows, features): standardised first
    if `standardise`; a logistic regression on fewer rows than features is fitted in the span of its
    centred rows (PCA with every component, no whitening). That is exact, not an approximation: with an
    unpenalised intercept the L2-penalised weights lie in that span (the representer theorem), and an
    orthogonal projection keeps their norm. At 224 px a fit on 150,528 pixels takes seconds, not minutes."""
    steps: list = [StandardScaler()] if standardise else []
    rows, features = shape
    if config.knobs.classifier == "logistic_regression" and features > rows:
        steps.append(PCA(svd_solver="full"))
    return make_pipeline(*steps, make_linear_classifier(config))


def folded_linear(preprocessing: Sequence, linear, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one linear layer on the raw features that computes `linear` after the
    fitted affine `preprocessing` steps (StandardScaler, PCA), each folded in; classes absent from its
    training labels get a bias that never wins."""
    weight = torch.as_tensor(linear.coef_, dtype=torch.float32)
    bias = torch.as_tensor(linear.intercept_, dtype=torch.float32)
    for step in reversed(preprocessing):  # x ↦ A(x − mean): W ↦ W·A, b ↦ b − W·A·mean
        if isinstance(step, StandardScaler):
            weight = weight / torch.as_tensor(step.scale_, dtype=torch.float32)
        else:
            weight = weight @ torch.as_tensor(step.components_, dtype=torch.float32)
        bias = bias - weight @ torch.as_tensor(step.mean_, dtype=torch.float32)
    if weight.shape[0] == 1 and classes == 2:  # scikit-learn keeps one row for two classes
        weight, bias = torch.cat([-weight / 2, weight / 2]), torch.cat([-bias / 2, bias / 2])
    full_weight = torch.zeros(classes, weight.shape[1])
    full_bias = torch.full((classes,), -1e4)
    full_weight[linear.classes_], full_bias[linear.classes_] = weight, bias
    return full_weight, full_bias


def fit_linear_classifier(
    model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], config: StrategyConfig, standardise: bool
) -> None:
    """Fit scikit-learn on frozen features and write the (scaler-folded) coefficients into `model.head`."""
    if not isinstance(model.head, nn.Linear):
        raise ValueError("linear_classifier needs a linear head: leave head_hidden empty")
    features = extract_features(model, train[0]).numpy()
    labels = train[1].cpu().numpy()
    fitted = linear_classifier_pipeline(config, features.shape, standardise).fit(features, labels)
    weight, bias = folded_linear([step for _, step in fitted.steps[:-1]], fitted[-1], model.head.out_features)
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


def one_fit_history(result: StrategyResult, measured: dict) -> None:
    """A classifier fitted once has no epochs: its history is its final validation."""
    result.history = [{"epoch": 1, "validation_loss": measured["nll"], "validation_accuracy": measured["accuracy"]}]


@register
class LinearClassifier(Strategy):
    """A frozen body's features are standardised: each feature on its own scale."""

    name = "linear_classifier"
    family = "parameter-based"
    Knobs = LinearClassifierKnobs
    trains_epochs = False
    standardise = True

    def train(self, task, config, result, checkpoint):
        result.model.to(resolve_device(config.training.device))
        fit_linear_classifier(result.model, task.train, config, self.standardise)  # one fit, no epochs

    def record_history(self, result, measured):
        one_fit_history(result, measured)

    def phases(self, config):
        return []

    def price_order(self, config: StrategyConfig) -> float:
        return -regularisation(config)  # the largest C first: a fit is timed once, at its slowest setting

    def price(self, meter, plan, config, scale):
        passes = meter.passes(config, plan.train, scale) + meter.passes(config, plan.validation, scale)
        return 0, 0.0, passes + meter.fit_seconds(config, plan.train)

    def fit_pipeline(self, config: StrategyConfig, shape: tuple[int, int]):
        """The scikit-learn fit the estimate times."""
        return linear_classifier_pipeline(config, shape, self.standardise)


class PixelsLinearKnobs(LinearClassifierKnobs, ClassicalKnobs):
    """The linear classifier's knobs and the classical references' folds, each declared in its class."""


@register
class PixelsLinearClassifier(Classical, LinearClassifier):
    """Logistic regression on the raw pixels, which are not standardised: they already share one range,
    [0, 1], and a scaler fitted on a handful of images divides by the tiny spread of pixels that are
    inked in one image of ten, so a stroke there outweighs the rest of the digit (10 points of test
    accuracy lost at 1 label per class, benchmarks/classical_baselines.py)."""

    name = "pixels_linear_classifier"
    Knobs = PixelsLinearKnobs
    standardise = False
    conf_name = LinearClassifier.name  # conf: procedure linear_classifier, model pixels

    def model_config(self, config, input_shape, classes, count):
        return {"name": "pixel_linear", "input_shape": list(input_shape), "num_classes": classes}

    def estimator(self, config, shape):
        return linear_classifier_pipeline(config, shape, standardise=False)  # as fit_linear_classifier fits it

    def fold_fit_seconds(self, meter, config, rows):
        return meter.fit_seconds(config, rows)
