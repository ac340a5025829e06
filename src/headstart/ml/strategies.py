"""The training procedures behind every transfer strategy, for one seed.

- `fit`: transfer (copy/freeze per the spec), then train what is trainable (scratch,
  feature_extractor, finetune_top, finetune_full differ only in their spec and rates);
- `linear_classifier`: scikit-learn logistic regression or linear SVM on features extracted once
  from the frozen body, folded back into the linear head so every strategy is evaluated alike;
- `probe_then_finetune`: LP-FT (Kumar et al. 2022): train the head on the frozen body, then
  fine-tune everything from that head;
- `nearest_neighbours`: k-NN on the raw pixels, a classical reference (with `linear_classifier` on
  `model: pixels`, logistic regression on the raw pixels, which are used as they are, in [0, 1]);
- `tradaboost`: TrAdaBoost (Dai et al., ICML 2007; headstart.ml.boosting), boosting rounds of the
  linear classifier over the frozen body's features of the source and target images.

`train_tuned` is the one tuning rule every strategy gets, the baselines included: each candidate of
its grid is trained over all seeds and the one with the best mean validation accuracy is kept. The
classical references (`model: pixels`) score their candidates as a careful scikit-learn user does,
by cross-validation over the training + validation labels, and are refitted on all of them
(`cross_validate_classical`): the same labels, none of them left unused.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import mean
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from scipy.special import softmax
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import LeaveOneOut, StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits
from torch import nn

from headstart.ml import adaptation as adaptation_module
from headstart.ml import progress
from headstart.ml.adaptation import (
    ADAPTATION_KINDS,
    AdaptationConfig,
    L2SPObjective,
    importance_weights,
)
from headstart.ml.boosting import BoostedVote, tradaboost
from headstart.ml.config import Settings, TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.feature_cache import cache_depth, fit_frozen_prefix_once
from headstart.ml.feature_cache import images_through_prefixes as feature_cache_images
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.racing import rung_epochs, setting_text, successive_halving
from headstart.ml.stacked_seeds import fit_seeds_together, seeds_per_stack, stack_size, why_not_stacked
from headstart.ml.training import (
    CrossEntropyObjective,
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
from headstart.ml.workers import Workers

logger = logging.getLogger(__name__)
Procedure = Literal["fit", "linear_classifier", "probe_then_finetune", "nearest_neighbours", "tradaboost"]
PROCEDURES_USING_SOURCE_IMAGES = ("tradaboost",)  # besides the adaptations of USES_SOURCE_IMAGES
TUNED_SETTINGS = ("lr_scale", "neighbours", "adaptation_weight", "boosting_rounds")  # what a tuning grid varies
CLASSIFIERS = ("logistic_regression", "linear_svm")  # linear_classifier's scikit-learn models
STRATEGY_MODELS = ("source", "pixels")  # the source architecture, or a classical model on the raw pixels


class StrategyChoice(Settings):
    """What a strategy's conf entry and each candidate it trains both say: its procedure and model."""

    procedure: Procedure = "fit"
    model: Literal[STRATEGY_MODELS] = "source"  # pixels: a classical reference on the raw pixels
    classifier: Literal[CLASSIFIERS] = "logistic_regression"  # linear_classifier's scikit-learn model
    regularisation_c: float = Field(1.0, gt=0)  # linear_classifier: scikit-learn's C, inverse regularisation
    # model: pixels: its grid is scored by this many folds of stratified cross-validation over the
    # training + validation labels (leave-one-out when a class has fewer), then refitted on all of them.
    folds: int = Field(5, ge=2)


class StrategyConfig(StrategyChoice):
    """One candidate of a strategy, as trained: its transfer, its training and its tuned settings."""

    spec: TransferSpec = TransferSpec()
    training: TrainConfig
    probe: TrainConfig | None = None  # probe_then_finetune's first phase
    neighbours: int = Field(1, ge=1)  # nearest_neighbours' k
    adaptation: AdaptationConfig | None = None  # fit with an objective of another family
    boosting_rounds: int = Field(10, ge=1)  # tradaboost's N
    folds: int = Field(
        5, ge=2
    )  # model: pixels: the cross-validation folds that choose its setting (cross_validate_classical)


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


def linear_classifier_pipeline(config: StrategyConfig, shape: tuple[int, int], standardise: bool) -> Pipeline:
    """The scikit-learn pipeline of a linear classifier on `shape` (rows, features): standardised first
    if `standardise`; a logistic regression on fewer rows than features is fitted in the span of its
    centred rows (PCA with every component, no whitening). That is exact, not an approximation: with an
    unpenalised intercept the L2-penalised weights lie in that span (the representer theorem), and an
    orthogonal projection keeps their norm. At 224 px a fit on 150,528 pixels takes seconds, not minutes."""
    steps: list = [StandardScaler()] if standardise else []
    rows, features = shape
    if config.classifier == "logistic_regression" and features > rows:
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


def fit_linear_classifier(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], config: StrategyConfig) -> None:
    """Fit scikit-learn on frozen features and write the (scaler-folded) coefficients into `model.head`.

    A frozen body's features are standardised; raw pixels (`model: pixels`) are not: they already
    share one range, [0, 1], and a scaler fitted on a handful of images divides by the tiny spread of
    pixels that are inked in one image of ten, so a stroke there outweighs the rest of the digit
    (10 points of test accuracy lost at 1 label per class, benchmarks/classical_baselines.py)."""
    if not isinstance(model.head, nn.Linear):
        raise ValueError("linear_classifier needs a linear head: leave head_hidden empty")
    features = extract_features(model, train[0]).numpy()
    labels = train[1].cpu().numpy()
    fitted = linear_classifier_pipeline(config, features.shape, standardise=config.model != "pixels").fit(
        features, labels
    )
    weight, bias = folded_linear([step for _, step in fitted.steps[:-1]], fitted[-1], model.head.out_features)
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
    key: str = field(default_factory=lambda: uuid.uuid4().hex, init=False, compare=False, repr=False)  # in a worker

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


def target_task(
    source: StoredModel,
    target_train: LabelledImages,
    target_validation: LabelledImages,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
) -> TargetTask:
    """What every strategy of a comparison shares: the source model and the target's labelled data
    (and, for the strategies that use them, the source images and the unlabelled target images)."""
    return TargetTask(
        source.config,
        source.state,
        len(target_train.primary_classes),
        target_train.primary_pairs(),
        target_validation.primary_pairs(),
        source=source_train.primary_pairs() if source_train is not None else None,
        unlabelled=target_unlabelled.images if target_unlabelled is not None else None,
        shared_label_space=source_train is not None and source_train.primary_classes == target_train.primary_classes,
    )


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
        raise ValueError(
            "tradaboost trains on source images labelled with the target's classes, and the source's classes "
            "are not the target's: leave it out (transfer.leave_out: [tradaboost])"
        )
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
    layers = [folded_linear([scaler], boosted.learners[t], task.num_classes) for t in voting]
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
        result.history = fit_frozen_prefix_once(
            model, train, validation, probe, probe_path, probe.frozen_feature_views
        ).history
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        finetuned = fit(model, train, validation, config.training, checkpoint_path).history
        result.history += [{**record, "epoch": record["epoch"] + len(result.history)} for record in finetuned]
    elif config.adaptation is not None:
        objective, result.images_seen = adaptation_objective(task, config, model, report)
        training = config.training
        if ADAPTATION_KINDS[config.adaptation.kind].replaces_weight_decay:  # its pull toward the source does
            training = training.model_copy(update={"weight_decay": 0.0})
        result.history = fit(model, train, validation, training, checkpoint_path, objective).history
    else:
        training = config.training
        result.history = fit_frozen_prefix_once(
            model, train, validation, training, checkpoint_path, training.frozen_feature_views
        ).history
    result.train_seconds = time.perf_counter() - started
    measured = measure_trained(result, task)
    if config.procedure in ("linear_classifier", "nearest_neighbours"):
        result.history = [{"epoch": 1, "validation_loss": measured["nll"], "validation_accuracy": measured["accuracy"]}]
    if config.procedure == "tradaboost":  # each round's ε_t and vote; the final hypothesis's validation
        rounds[-1].update(validation_loss=measured["nll"], validation_accuracy=measured["accuracy"])
        result.history = rounds
    count_parameters(model, report)  # after LP-FT's unfreezing, the count of the final phase
    model.cpu()
    return result


def measure_trained(result: StrategyResult, task: TargetTask) -> dict:
    """Count the images a training saw and measure its model on validation (what tuning compares)."""
    # a trained procedure counts per epoch; a classifier fitted once sees the training images once
    result.images_seen += sum(record.get("images_seen", 0) for record in result.history) or len(task.train[0])
    measured = evaluate(result.model, *task.validation)
    result.validation_accuracy, result.validation_loss = measured["accuracy"], measured["nll"]
    return measured


def seed_stacks(task: TargetTask, configs: list[StrategyConfig]) -> list[list[int]]:
    """The seeds (indices into `configs`) that train together in one stack (headstart.ml.stacked_seeds),
    and each other seed alone: stacks are for a whole-model `fit` with the plain objective."""
    first, alone = configs[0], [[index] for index in range(len(configs))]
    if len(configs) < 2 or first.procedure != "fit" or first.adaptation is not None:
        return alone
    if seeds_per_stack(first.training) < 2:
        return alone
    torch.manual_seed(first.training.seed)
    model, _, _ = initial_model(task, first)
    if first.training.frozen_feature_views and cache_depth(model) is not None:
        return alone  # it trains on its frozen prefix's cached features: a head's cost already
    reason = why_not_stacked(model, task.train[0], first.training)
    if reason is not None:
        logger.info("Training each seed alone: %s", reason)
        return alone
    size = stack_size(task.train[0], first.training)
    return [list(range(start, min(start + size, len(configs)))) for start in range(0, len(configs), size)]


def train_strategies_together(
    task: TargetTask, configs: list[StrategyConfig], checkpoint_path: Path | None = None
) -> list[StrategyResult]:
    """`train_strategy` for the seeds of one `fit` candidate (configs equal but for the seed), in one stack."""
    built = []
    for config in configs:
        torch.manual_seed(config.training.seed)  # each seed's model as train_strategy builds it
        built.append(initial_model(task, config))
    started = time.perf_counter()
    trained = fit_seeds_together(
        [model for model, _, _ in built], task.train, task.validation, [c.training for c in configs], checkpoint_path
    )
    seconds = (time.perf_counter() - started) / len(configs)  # each seed's share of the stack's time
    results = []
    for (model, report, model_config), fitted in zip(built, trained):
        result = StrategyResult(model, report, model_config, fitted.history, seconds)
        measure_trained(result, task)
        count_parameters(model, report)
        model.cpu()
        results.append(result)
    return results


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
    rungs: list[dict] = field(default_factory=list)  # successive halving's cuts: epochs, scores, kept settings
    final_scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # (accuracy, −loss) at the end
    final_histories: dict[str, dict[int, list[dict]]] = field(default_factory=dict)  # per finisher, per seed
    grid_seconds: float = 0.0  # every training of the grid, cut candidates' included
    grid_images_seen: int = 0
    prefix_images: int = 0  # through cached frozen prefixes, once per process that trained it

    def setting_text(self) -> str:
        return setting_text(self.setting)


def mean_score(results: dict[int, StrategyResult]) -> tuple[float, float]:
    """What tuning compares: mean validation accuracy over the seeds, then lower mean validation loss."""
    return (
        mean(r.validation_accuracy for r in results.values()),
        -mean(r.validation_loss for r in results.values()),
    )


_known_tasks: dict[str, TargetTask] = {}  # a worker's tasks, so each computes a task's cache once


def train_seed_stack(
    task: TargetTask, configs: list[StrategyConfig], checkpoint_path: Path | None
) -> tuple[list[StrategyResult], int]:
    """One job of a grid: the seeds of one stack (one seed, or seeds trained together), and the images
    its frozen prefix took (counted where the job ran: a worker process has its own feature cache). A
    worker keeps the tasks it has seen, so what every seed of a task shares (source features, importance
    weights) is computed once per worker, not once per job."""
    task = _known_tasks.setdefault(task.key, task)
    while len(_known_tasks) > 4:
        _known_tasks.pop(next(iter(_known_tasks)))
    before = feature_cache_images()
    if len(configs) > 1:
        trained = train_strategies_together(task, configs, checkpoint_path)
    else:
        trained = [train_strategy(task, configs[0], checkpoint_path)]
    return trained, feature_cache_images() - before


def train_tuned(
    task: TargetTask,
    grid: list[dict[str, float]],
    seeds: list[int],
    configure: Callable[[dict[str, float], int], StrategyConfig],
    checkpoint_for: Callable[[dict[str, float], int], Path | None] = lambda setting, seed: None,
    eta: int | None = None,
    task_for: Callable[[dict[str, float]], TargetTask] | None = None,
    rung_floor: int = 1,
    workers: Workers | None = None,
) -> TunedStrategy:
    """Keep the candidate setting with the best mean validation accuracy over the seeds (ties: lower
    mean validation loss). With `eta`, the grid of a `fit` procedure is raced by successive halving
    (headstart.ml.racing), else every candidate trains to the end. Only the validation split is seen:
    the test split cannot sway the choice. A finished training's checkpoints are deleted. A classical
    reference on the raw pixels is tuned by cross-validation instead (`cross_validate_classical`).
    `task_for` gives a candidate its own task (the advice's race: each strategy from its own source);
    the target data must be `task`'s. No rung comes before `rung_floor` epochs (nor before min_epochs).
    With `workers`, every (candidate, seed) training of a rung runs at once in their processes; each
    training seeds itself, so where it runs does not change what it draws."""
    workers = workers or Workers(1)
    first = configure(grid[0], seeds[0])
    if first.model == "pixels":
        return cross_validate_classical(task, grid, seeds, configure)
    training = first.training
    earliest = max(training.min_epochs, rung_floor)
    budgets = rung_epochs(training.epochs, len(grid), eta or 1, earliest) if first.procedure == "fit" else []
    # per (candidate, seed), over its paused and resumed calls: seconds, images of one-off setup (fitted
    # once per call, e.g. importance weights' domain classifier), images in all
    spent: dict[tuple[int, int], tuple[float, int, int]] = {}
    prefix_images = 0
    with tempfile.TemporaryDirectory(prefix="headstart-race-") as scratch:

        def checkpoint(candidate: int, seed: int) -> Path | None:
            path = checkpoint_for(grid[candidate], seed)
            return path if path is not None or not budgets else Path(scratch) / f"candidate{candidate}-seed{seed}.pt"

        def configured(candidate: int, seed: int, pause_after: int | None) -> StrategyConfig:
            config = configure(grid[candidate], seed)
            if pause_after is None:
                return config
            return config.model_copy(
                update={"training": config.training.model_copy(update={"pause_after": pause_after})}
            )

        def submit(candidate: int, pause_after: int | None) -> list[tuple[list[int], Any]]:
            configs = [configured(candidate, seed, pause_after) for seed in seeds]
            own_task = task_for(grid[candidate]) if task_for else task
            jobs = []
            for stack in seed_stacks(own_task, configs):
                stacked_seeds = [seeds[index] for index in stack]
                for seed in stacked_seeds:  # a line per seed's training, stacked or not
                    together = f" (stacked with seeds {stacked_seeds})" if len(stack) > 1 else ""
                    logger.info("Training seed %d with %s%s", seed, grid[candidate], together)
                path = checkpoint(candidate, stacked_seeds[0])
                if path is not None and len(stack) > 1:
                    path = path.with_name(f"seeds-together-{path.name}")
                job = workers.submit(train_seed_stack, own_task, [configs[index] for index in stack], path)
                jobs.append((stacked_seeds, job))
            return jobs

        def collect(candidate: int, jobs: list[tuple[list[int], Any]]) -> dict[int, StrategyResult]:
            nonlocal prefix_images
            results = {}
            for stacked_seeds, job in jobs:
                try:
                    trained, prefix = job.result()
                except FloatingPointError as error:  # name the seed and setting, not only the epoch
                    seed = getattr(error, "seed", stacked_seeds[0])
                    raise FloatingPointError(f"seed {seed}, {setting_text(grid[candidate])}: {error}") from error
                prefix_images += prefix
                for seed, result in zip(stacked_seeds, trained):
                    seconds, setup, _ = spent.get((candidate, seed), (0.0, 0, 0))
                    epochs_images = sum(r.get("images_seen", 0) for r in result.history)
                    setup += result.images_seen - epochs_images
                    result.train_seconds, result.images_seen = seconds + result.train_seconds, setup + epochs_images
                    spent[candidate, seed] = result.train_seconds, setup, result.images_seen
                    results[seed] = result
            return results

        def train_all(candidates: list[int], pause_after: int | None) -> dict[int, dict[int, StrategyResult]]:
            submitted = {candidate: submit(candidate, pause_after) for candidate in candidates}
            return {candidate: collect(candidate, jobs) for candidate, jobs in submitted.items()}

        def forget(candidate: int) -> None:
            for seed in seeds:
                path = checkpoint(candidate, seed)
                if path is not None:
                    for file in path.parent.glob(f"*{path.name}"):
                        file.unlink()

        candidates = list(range(len(grid)))
        alive, rungs = successive_halving(
            candidates,
            budgets,
            eta or 1,
            score_rung=lambda alive, epochs: {c: mean_score(r) for c, r in train_all(alive, epochs).items()},
        )
        progress.done(len(seeds) * (len(candidates) - len(alive)))  # cut by a rung: their trainings ended
        best, best_score, finals, histories = None, None, {}, {}
        for candidate, results in train_all(alive, None).items():
            progress.done(len(results))
            forget(candidate)
            score = mean_score(results)
            finals[setting_text(grid[candidate])] = score
            histories[setting_text(grid[candidate])] = {seed: result.history for seed, result in results.items()}
            if best_score is None or score > best_score:
                best_score, best = score, TunedStrategy(grid[candidate], results, score[0])
        for candidate in set(candidates) - set(alive):
            forget(candidate)
    workers.settle()
    best.final_scores, best.final_histories = finals, histories
    best.rungs = [
        {
            "epochs": rung["epochs"],
            "scores": {setting_text(grid[c]): score[0] for c, score in rung["scores"].items()},
            "kept": [setting_text(grid[c]) for c in rung["kept"]],
        }
        for rung in rungs
    ]
    best.grid_seconds = sum(seconds for seconds, _, _ in spent.values())
    best.grid_images_seen = sum(images for _, _, images in spent.values())
    best.prefix_images = prefix_images
    return best


def classical_estimator(config: StrategyConfig, shape: tuple[int, int]):
    """The scikit-learn model a classical reference on the raw pixels is, at the config's setting, to
    fit on `shape` (images, pixels) (k-NN asks for at most that many neighbours, as PixelNearestNeighbours)."""
    if config.procedure == "nearest_neighbours":
        return KNeighborsClassifier(min(config.neighbours, shape[0]))
    return linear_classifier_pipeline(config, shape, standardise=False)  # as fit_linear_classifier fits it


def cross_validation_fits(labelled: int, classes: int, folds: int) -> tuple[int, int]:
    """(fits, rows of each fit) of `cross_validation_folds` on `labelled` images of `classes` balanced
    classes: `folds` fits on the rest of the labels, or one per image (leave-one-out)."""
    if labelled // max(classes, 1) < folds:
        return labelled, labelled - 1
    return folds, labelled - labelled // folds


def cross_validation_folds(labels: np.ndarray, folds: int, seed: int):
    """Stratified `folds`-fold cross-validation, shuffled by `seed`; leave-one-out when a class has
    fewer labels than folds (1 or 2 labels per class to train and as many to validate)."""
    if np.unique(labels, return_counts=True)[1].min() < folds:
        return LeaveOneOut()
    return StratifiedKFold(folds, shuffle=True, random_state=seed)


@dataclass
class CrossValidated:
    """One candidate's out-of-fold predictions for one seed's shuffle of the folds, and what they cost."""

    correct: np.ndarray  # per labelled image: predicted right by the model fitted without it
    nll: float  # pooled over the out-of-fold predictions (a leave-one-out fold has no NLL of its own)
    seconds: float
    images_fitted: int  # rows over every fold's fit

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def cross_validated_scores(
    config: StrategyConfig, features: np.ndarray, labels: np.ndarray, seed: int
) -> CrossValidated:
    """The out-of-fold predictions of `config`'s classical model: each image predicted by the model
    fitted without it, and the seconds and rows that took."""
    started = time.perf_counter()
    folds = cross_validation_folds(labels, config.folds, seed)
    fitted_rows = [len(fitted) for fitted, _ in folds.split(features, labels)]
    estimator = classical_estimator(config, (min(fitted_rows), features.shape[1]))
    method = "predict_proba" if hasattr(estimator, "predict_proba") else "decision_function"
    scores = cross_val_predict(estimator, features, labels, cv=folds, method=method)
    classes = np.unique(labels)
    if scores.ndim == 1:  # a binary decision function: one column
        scores = np.stack([-scores, scores], axis=1)
    probabilities = scores if method == "predict_proba" else softmax(scores, axis=1)
    correct = classes[scores.argmax(1)] == labels
    nll = float(log_loss(labels, probabilities, labels=classes))
    return CrossValidated(correct, nll, time.perf_counter() - started, sum(fitted_rows))


def preferred_or_clearly_better(
    grid: list[dict[str, float]], scores: list[dict[int, CrossValidated]]
) -> tuple[int, str]:
    """The candidate a classical reference keeps, and why: the grid's first candidate (its default: the
    library's own setting) unless the best by mean out-of-fold accuracy over seeds (ties: lower NLL)
    beats it by more than one standard error of the per-image difference (averaged over the seeds'
    shuffles, n = labelled images). With 2–4 labels per class, cross-validation picks by noise often
    enough to fall below the library default; this is the one-standard-error rule of Hastie,
    Tibshirani & Friedman (ESL §7.10), anchored at the default rather than the simplest model."""

    def mean_score(candidate: int) -> tuple[float, float]:
        runs = scores[candidate].values()
        return mean(run.accuracy for run in runs), -mean(run.nll for run in runs)

    best = max(range(len(grid)), key=lambda candidate: (mean_score(candidate), -candidate))
    if best == 0:
        return 0, f"the default {setting_text(grid[0])} scored best"
    per_image = np.mean([scores[best][seed].correct.astype(float) - scores[0][seed].correct for seed in scores[0]], 0)
    gain, error = float(per_image.mean()), float(per_image.std(ddof=1) / math.sqrt(len(per_image)))
    if gain > error:
        return best, f"{setting_text(grid[best])} beat the default by {gain:.4f} > one standard error {error:.4f}"
    return 0, f"{setting_text(grid[best])} beat the default by {gain:.4f}, within one standard error {error:.4f}"


def cross_validate_classical(
    task: TargetTask,
    grid: list[dict[str, float]],
    seeds: list[int],
    configure: Callable[[dict[str, float], int], StrategyConfig],
) -> TunedStrategy:
    """A classical reference tuned as a careful scikit-learn user tunes it: every candidate scored by
    cross-validation over the training + validation labels (`cross_validation_folds`, shuffled per
    seed), the default kept unless another is clearly better (`preferred_or_clearly_better`), then
    refitted on all those labels. Choosing C or k on 1 validation label per class is choosing by noise,
    and fitting on the training labels alone leaves half the labels the budget paid for unused
    (Oliver et al. 2018: select by cross-validation within the budget). Each result's validation
    accuracy and loss are its cross-validated ones (its validation labels are in its training set); its
    seconds and images count its share of the cross-validation: every candidate's folds for its seed."""
    labelled = tuple(torch.cat(pair) for pair in zip(task.train, task.validation))
    features, labels = scale_images(labelled[0]).flatten(1).numpy(), labelled[1].numpy()  # the pixel models' features
    scores: list[dict[int, CrossValidated]] = []
    for setting in grid:
        with threadpool_limits(1):  # many fits of a few images: BLAS threads cost more than they save
            scores.append(
                {seed: cross_validated_scores(configure(setting, seed), features, labels, seed) for seed in seeds}
            )
        accuracy, nll = mean(run.accuracy for run in scores[-1].values()), mean(run.nll for run in scores[-1].values())
        logger.info("Cross-validated %s: accuracy %.4f, NLL %.4f", setting_text(setting), accuracy, nll)
    kept, why = preferred_or_clearly_better(grid, scores)
    logger.info("Kept %s: %s", setting_text(grid[kept]), why)
    results = {}
    for seed in seeds:
        logger.info("Training seed %d with %s", seed, grid[kept])  # the refit on every label, once per seed
        result = train_strategy(replace(task, train=labelled), configure(grid[kept], seed))
        run = scores[kept][seed]
        result.validation_accuracy, result.validation_loss = run.accuracy, run.nll
        result.history = [
            {"epoch": 1, "validation_loss": result.validation_loss, "validation_accuracy": result.validation_accuracy}
        ]
        result.train_seconds += sum(candidate[seed].seconds for candidate in scores)
        result.images_seen += sum(candidate[seed].images_fitted for candidate in scores)
        results[seed] = result
    progress.done(len(results))
    tuned = TunedStrategy(grid[kept], results, mean(run.accuracy for run in scores[kept].values()))
    tuned.grid_seconds = sum(result.train_seconds for result in results.values())
    tuned.grid_images_seen = sum(result.images_seen for result in results.values())
    return tuned
