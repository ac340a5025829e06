"""The training procedures behind every transfer strategy, for one seed.

- `fit`: transfer (copy/freeze per the spec), then train what is trainable (scratch,
  feature_extractor, finetune_top, finetune_full differ only in their spec and rates);
- `linear_classifier`: scikit-learn logistic regression or linear SVM on features extracted once
  from the frozen body, folded back into the linear head so every strategy is evaluated alike;
- `probe_then_finetune`: LP-FT (Kumar et al. 2022): train the head on the frozen body, then
  fine-tune everything from that head;
- `nearest_neighbours`: k-NN on the raw pixels, a classical reference (with `linear_classifier` on
  `model: pixels`, logistic regression on the raw pixels);
- `tradaboost`: TrAdaBoost (Dai et al., ICML 2007; headstart.ml.boosting), boosting rounds of the
  linear classifier over the frozen body's features of the source and target images.

`train_tuned` is the one tuning rule every strategy gets, the baselines included: each candidate of
its grid is trained over all seeds and the one with the best mean validation accuracy is kept.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import mean
from typing import Any, Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from headstart.ml import adaptation as adaptation_module
from headstart.ml.adaptation import (
    ADAPTATION_KINDS,
    AdaptationConfig,
    L2SPObjective,
    importance_weights,
)
from headstart.ml.boosting import BoostedVote, tradaboost
from headstart.ml.models import build_model
from headstart.ml.training import (
    CrossEntropyObjective,
    TrainConfig,
    evaluate,
    fit,
    image_batches,
    model_device,
    resolve_device,
    scale_images,
)
from headstart.ml.transfer import (
    TransferReport,
    TransferSpec,
    count_parameters,
    load_full_state,
    target_config,
    transfer_model,
)

logger = logging.getLogger(__name__)
Procedure = Literal["fit", "linear_classifier", "probe_then_finetune", "nearest_neighbours", "tradaboost"]
PROCEDURES_USING_SOURCE_IMAGES = ("tradaboost",)  # besides the adaptations of USES_SOURCE_IMAGES
TUNED_SETTINGS = ("lr_scale", "neighbours", "adaptation_weight", "boosting_rounds")  # what a tuning grid varies
CLASSIFIERS = ("logistic_regression", "linear_svm")  # linear_classifier's scikit-learn models
STRATEGY_MODELS = ("source", "pixels")  # the source architecture, or a classical model on the raw pixels


@dataclass(frozen=True)
class StrategyConfig:
    procedure: Procedure
    spec: TransferSpec
    training: TrainConfig
    probe: TrainConfig | None = None  # probe_then_finetune's first phase
    classifier: str = "logistic_regression"  # one of CLASSIFIERS
    regularisation_c: float = 1.0  # scikit-learn's C: inverse regularisation strength
    model: str = "source"  # one of STRATEGY_MODELS; pixels: a classical reference on the raw pixels
    neighbours: int = 1  # nearest_neighbours' k
    adaptation: AdaptationConfig | None = None  # fit with an objective of another family
    boosting_rounds: int = 10  # tradaboost's N


@dataclass
class StrategyResult:
    model: nn.Module
    report: TransferReport
    config: dict[str, Any] = field(default_factory=dict)  # build_model's argument for `model`
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    validation_accuracy: float = 0.0  # of the returned (best) model: what learning-rate tuning compares
    validation_loss: float = 0.0
    images_seen: int = 0  # images passed through a model while training: target, source and unlabelled


def extract_features(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [
                model.forward_features(scale_images(batch.to(device))).float().cpu()
                for batch in image_batches(images, batch_size)
            ]
        )


def make_linear_classifier(config: StrategyConfig):
    """The scikit-learn linear model of `config.classifier`, at its C."""
    if config.classifier == "logistic_regression":
        return LogisticRegression(C=config.regularisation_c, max_iter=2000)
    return LinearSVC(C=config.regularisation_c, max_iter=10000)


def folded_linear(scaler: StandardScaler, linear, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one linear layer on the raw features that computes `linear` on the
    standardised features; classes absent from its training labels get a bias that never wins."""
    weight = torch.as_tensor(linear.coef_, dtype=torch.float32) / torch.as_tensor(scaler.scale_, dtype=torch.float32)
    bias = torch.as_tensor(linear.intercept_, dtype=torch.float32) - weight @ torch.as_tensor(
        scaler.mean_, dtype=torch.float32
    )
    if weight.shape[0] == 1 and classes == 2:  # scikit-learn keeps one row for two classes
        weight, bias = torch.cat([-weight / 2, weight / 2]), torch.cat([-bias / 2, bias / 2])
    full_weight = torch.zeros(classes, weight.shape[1])
    full_bias = torch.full((classes,), -1e4)
    full_weight[linear.classes_], full_bias[linear.classes_] = weight, bias
    return full_weight, full_bias


def fit_linear_classifier(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], config: StrategyConfig) -> None:
    """Fit scikit-learn on frozen features and write the (scaler-folded) coefficients into `model.head`."""
    if not isinstance(model.head, nn.Linear):
        raise ValueError("linear_classifier needs a linear head: leave head_hidden empty")
    features = extract_features(model, train[0]).numpy()
    labels = train[1].cpu().numpy()
    fitted = make_pipeline(StandardScaler(), make_linear_classifier(config)).fit(features, labels)
    weight, bias = folded_linear(fitted[0], fitted[1], model.head.out_features)
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)


@dataclass(frozen=True)
class TargetTask:
    """What every strategy of one comparison shares: the source model and the target's labelled data."""

    source_config: dict[str, Any]
    source_state: dict[str, torch.Tensor]
    num_classes: int
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    # Seen only by the strategies that say they use them (feature- and instance-based transfer):
    source: tuple[torch.Tensor, torch.Tensor] | None = None  # labelled source images
    unlabelled: torch.Tensor | None = None  # target images whose labels are not used
    shared_label_space: bool = False  # the source's classes are the target's, in the same order
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # what every seed may share

    def source_features(self) -> torch.Tensor:
        """The frozen source model's features of the source images (extracted once per task)."""
        if "source_features" not in self.cache:
            source_model = build_model(self.source_config)
            load_full_state(source_model, self.source_state)
            self.cache["source_features"] = extract_features(source_model, self.source[0])
        return self.cache["source_features"]

    def importance_weights(self, clip: float) -> tuple[torch.Tensor, int]:
        """w(x) for each source image (computed once per task), and the images its domain classifier saw."""
        if clip not in self.cache:
            source_model = build_model(self.source_config)
            load_full_state(source_model, self.source_state)
            target_images = self.train[0] if self.unlabelled is None else torch.cat([self.train[0], self.unlabelled])
            source_features = extract_features(source_model, self.source[0]).numpy()
            self.cache[clip] = (
                importance_weights(source_features, extract_features(source_model, target_images).numpy(), clip),
                len(self.source[0]) + len(target_images),
            )
        return self.cache[clip]


def adaptation_objective(
    task: TargetTask, config: StrategyConfig, model: nn.Module, report: TransferReport
) -> tuple[CrossEntropyObjective, int]:
    """The objective of a conservative, feature-based, instance-based or relational strategy (its
    registry entry names it), and the images it saw to set up."""
    objective = getattr(adaptation_module, ADAPTATION_KINDS[config.adaptation.kind].objective)
    source_model = None
    if objective is not L2SPObjective:  # every other kind reads the frozen source model
        source_model = build_model(task.source_config)
        load_full_state(source_model, task.source_state)
    return objective.for_strategy(task, config, model, report, source_model)


def fit_tradaboost(
    task: TargetTask, config: StrategyConfig, model: nn.Module, model_config: dict[str, Any]
) -> tuple[BoostedVote, dict[str, Any], list[dict[str, float]]]:
    """TrAdaBoost's rounds over the frozen body's features of the source and the target training images
    (source labels as target labels: the two must share their classes); the final hypothesis as a
    module, its config and one history record per round."""
    if task.source is None or not task.shared_label_space:
        raise ValueError("tradaboost trains on source images labelled with the target's classes, and none were given")
    target_features = extract_features(model, task.train[0]).double().numpy()
    source_features = task.source_features().double().numpy()
    scaler = StandardScaler().fit(np.concatenate([source_features, target_features]))
    boosted = tradaboost(
        (scaler.transform(source_features), task.source[1].numpy()),
        (scaler.transform(target_features), task.train[1].numpy()),
        config.boosting_rounds,
        task.num_classes,
        lambda: make_linear_classifier(config),
    )
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
    layers = [folded_linear(scaler, boosted.learners[t], task.num_classes) for t in voting]
    with torch.no_grad():
        vote.learners.weight.copy_(torch.cat([weight for weight, _ in layers]))
        vote.learners.bias.copy_(torch.cat([bias for _, bias in layers]))
        vote.vote_weights.copy_(torch.as_tensor(boosted.vote_weights()))
    history = [
        {"epoch": t + 1, "target_error": error, "learner_weight": math.log(1 / beta), "source_weight_share": share}
        for t, (error, beta, share) in enumerate(zip(boosted.errors, boosted.betas, boosted.source_shares))
    ]
    return vote.to(model_device(model)), vote_config, history


def initial_model(task: TargetTask, config: StrategyConfig) -> tuple[nn.Module, TransferReport, dict[str, Any]]:
    """The target model before training: transferred from the source per the spec (or a classical model
    on the raw pixels), its transfer report and its config (build_model's argument)."""
    if config.model == "pixels":
        train = task.train
        model_config = pixel_model_config(config, tuple(train[0].shape[1:]), task.num_classes, len(train[0]))
        model = build_model(model_config)
        return model, count_parameters(model, TransferReport(reinitialised=list(model.state_dict()))), model_config
    model, report = transfer_model(task.source_config, task.source_state, task.num_classes, config.spec)
    return model, report, target_config(task.source_config, task.num_classes, config.spec)


def train_strategy(task: TargetTask, config: StrategyConfig, checkpoint_path: Path | None = None) -> StrategyResult:
    """Build the target model from the source and train it by the strategy's procedure (seeded by `training.seed`)."""
    train, validation = task.train, task.validation
    torch.manual_seed(config.training.seed)  # the fresh head, and every layer a strategy does not copy
    model, report, model_config = initial_model(task, config)
    started = time.perf_counter()
    result = StrategyResult(model, report, model_config)
    if config.procedure == "nearest_neighbours":
        model.to(resolve_device(config.training.device)).remember(scale_images(train[0]), train[1])
    elif config.procedure == "linear_classifier":
        model.to(resolve_device(config.training.device))
        fit_linear_classifier(model, train, config)  # one fit, no epochs: its history is the final validation below
    elif config.procedure == "tradaboost":
        model.to(resolve_device(config.training.device))
        model, result.config, rounds = fit_tradaboost(task, config, model, model_config)
        result.model, result.images_seen = model, len(task.source[0])  # + the target images, counted below
    elif config.procedure == "probe_then_finetune":
        probe = config.probe or config.training
        probe_path = checkpoint_path.with_name(f"probe-{checkpoint_path.name}") if checkpoint_path else None
        result.history = fit(model, train, validation, probe, probe_path).history
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        finetuned = fit(model, train, validation, config.training, checkpoint_path).history
        result.history += [{**record, "epoch": record["epoch"] + len(result.history)} for record in finetuned]
    elif config.adaptation is not None:
        objective, result.images_seen = adaptation_objective(task, config, model, report)
        training = config.training
        if ADAPTATION_KINDS[config.adaptation.kind].replaces_weight_decay:  # its pull toward the source does
            training = replace(training, weight_decay=0.0)
        result.history = fit(model, train, validation, training, checkpoint_path, objective).history
    else:
        result.history = fit(model, train, validation, config.training, checkpoint_path).history
    # a trained procedure counts per epoch; a classifier fitted once sees the training images once
    result.images_seen += sum(record.get("images_seen", 0) for record in result.history) or len(train[0])
    result.train_seconds = time.perf_counter() - started
    measured = evaluate(model, *validation)
    result.validation_accuracy, result.validation_loss = measured["accuracy"], measured["nll"]
    if config.procedure in ("linear_classifier", "nearest_neighbours"):
        result.history = [{"epoch": 1, "validation_loss": measured["nll"], "validation_accuracy": measured["accuracy"]}]
    if config.procedure == "tradaboost":  # each round's ε_t and vote; the final hypothesis's validation
        rounds[-1].update(validation_loss=measured["nll"], validation_accuracy=measured["accuracy"])
        result.history = rounds
    count_parameters(model, report)  # after LP-FT's unfreezing, the count of the final phase
    model.cpu()
    return result


def pixel_model_config(
    config: StrategyConfig, input_shape: tuple[int, ...], num_classes: int, train_count: int
) -> dict[str, Any]:
    if config.procedure == "nearest_neighbours":
        return {
            "name": "pixel_nearest_neighbours",
            "input_shape": list(input_shape),
            "num_classes": num_classes,
            "memory_size": train_count,
            "neighbours": config.neighbours,
        }
    return {"name": "pixel_linear", "input_shape": list(input_shape), "num_classes": num_classes}


@dataclass
class TunedStrategy:
    setting: dict[str, float]  # the kept candidate of the grid, e.g. {"lr_scale": 0.3} or {"neighbours": 3}
    results: dict[int, StrategyResult]  # per seed
    validation_accuracy: float  # mean over seeds: what chose the setting

    def setting_text(self) -> str:
        return setting_text(self.setting)


def setting_text(setting: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:g}" for name, value in setting.items())


def train_tuned(
    task: TargetTask,
    grid: list[dict[str, float]],
    seeds: list[int],
    configure: Callable[[dict[str, float], int], StrategyConfig],
    checkpoint_for: Callable[[dict[str, float], int], Path | None] = lambda setting, seed: None,
) -> TunedStrategy:
    """Train every candidate setting over every seed and keep the best by mean validation accuracy
    (ties: lower mean validation loss). Only the validation split is seen: the test split cannot
    sway the choice. A finished training's checkpoints are deleted."""
    best, best_score = None, None
    for setting in grid:
        results = {}
        for seed in seeds:
            checkpoint = checkpoint_for(setting, seed)
            logger.info("Training seed %d with %s", seed, setting)
            try:
                results[seed] = train_strategy(task, configure(setting, seed), checkpoint)
            except FloatingPointError as error:  # name the seed and setting, not only the epoch
                raise FloatingPointError(f"seed {seed}, {setting_text(setting)}: {error}") from error
            if checkpoint is not None:
                for path in checkpoint.parent.glob(f"*{checkpoint.name}"):
                    path.unlink()
        score = (
            mean(r.validation_accuracy for r in results.values()),
            -mean(r.validation_loss for r in results.values()),
        )
        if best_score is None or score > best_score:
            best_score, best = score, TunedStrategy(setting, results, score[0])
    return best
