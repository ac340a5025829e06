"""What every transfer strategy is: a `Strategy` registered by the name the conf gives it, the candidate
config it trains (`StrategyConfig`), the data it trains on (`TargetTask`) and what it returns.

A strategy is one file under this package (DESIGN.md, "Methods as files"): a subclass of `Strategy`
with its name, family, its own knobs (a `Knobs` class, declared there once and validated there by
Kedro's parameters) and one required step, `train`. The hooks below have defaults that fit a network
trained by `fit`; a strategy overrides what it does differently (its initial model, the phases the
estimate prices, whether seeds stack, how its grid is tuned, its price). `@register` files it under its
name; `headstart.ml.strategies` imports every strategy module, as timm's `models/__init__.py` does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import SerializeAsAny, ValidationError, model_validator
from torch import nn

from headstart.ml.config import Settings, TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import CrossEntropyObjective, evaluate, image_batches, model_device, scale_images
from headstart.ml.transfer import (
    TransferReport,
    TransferSpec,
    block_count,
    count_parameters,
    load_full_state,
    target_config,
    transfer_model,
)

if TYPE_CHECKING:
    from headstart.ml.cost import Plan
    from headstart.ml.meter import Meter
    from headstart.ml.strategies.tuning import TunedStrategy

SOURCE_IMAGES, UNLABELLED_TARGET = "source images", "unlabelled target"
STRATEGY_MODELS = ("source", "pixels")  # the source architecture, or a classical model on the raw pixels


class Knobs(Settings):
    """A strategy's own knobs (none by default). A strategy declares its knobs here once, with their
    defaults and ranges; a tuned knob is a list, its grid (e.g. nearest_neighbours' `neighbours`)."""


class StrategyConfig(Settings):
    """One candidate of a strategy, as trained: the strategy's name(s), its transfer, its training, its
    knobs and the tuned values of this candidate (`setting`: e.g. {"lr_scale": 0.3, "neighbours": 3})."""

    procedure: str = "fit"  # the registered strategy that trains it
    adaptation: str | None = None  # an objective strategy trained by `fit` (l2_sp, coral, ...)
    model: Literal[STRATEGY_MODELS] = "source"  # pixels: a classical reference on the raw pixels
    spec: TransferSpec = TransferSpec()
    training: TrainConfig
    probe: TrainConfig | None = None  # a first phase before `training` (LP-FT's linear probe)
    knobs: SerializeAsAny[Knobs] = Knobs()  # the strategy's own (its Knobs' defaults when not given)
    setting: dict[str, float] = {}

    @model_validator(mode="before")
    @classmethod
    def _knobs_of_its_strategy(cls, data: Any) -> Any:
        if isinstance(data, dict) and not isinstance(data.get("knobs"), Knobs):
            strategy = strategy_of(data.get("adaptation") or data.get("procedure", "fit"), data.get("model", "source"))
            data = {**data, "knobs": strategy.knobs(data.get("knobs") or {})}
        return data

    @property
    def strategy(self) -> Strategy:
        return strategy_of(self.adaptation or self.procedure, self.model)

    def tuned(self, name: str, default: float) -> float:
        """The candidate's value of a tuned knob (its setting's), else `default`."""
        return self.setting.get(name, default)

    @property
    def lr_scale(self) -> float:
        return self.tuned("lr_scale", 1.0)

    def with_trainings(self, change: Callable[[TrainConfig], TrainConfig]) -> StrategyConfig:
        """This config with `change` applied to each of its trainings (the probe's too)."""
        return self.model_copy(update={"training": change(self.training), "probe": self.probe and change(self.probe)})


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
    prefix_images: int = 0  # images it pushed through a cached frozen prefix (headstart.ml.feature_cache)


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

    def source_model(self) -> nn.Module:
        """The source model as stored (a fresh copy: a strategy may move or freeze it)."""
        model = build_model(self.source_config)
        load_full_state(model, self.source_state)
        return model

    def once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per task (every seed and candidate share it), e.g. the source features."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def source_features(self) -> torch.Tensor:
        """The frozen source model's features of the source images (extracted once per task)."""
        return self.once("source_features", lambda: extract_features(self.source_model(), self.source[0]))


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


class Strategy:
    """One way to train a target model. Override `train`; the rest has defaults for a network trained
    by `fit` on the transferred model."""

    name: ClassVar[str]
    family: ClassVar[str]  # parameter-based, conservative, feature-based, ... (shared/REFERENCE.md)
    Knobs: ClassVar[type[Knobs]] = Knobs
    models: ClassVar[tuple[str, ...]] = ("source",)  # the `model` values it trains
    uses: ClassVar[tuple[str, ...]] = ()  # what it uses besides the target labels and the source weights
    trains_epochs: ClassVar[bool] = True  # its trainings run epochs (the race shortens them)
    raced: ClassVar[bool] = False  # its grid is raced by successive halving (headstart.ml.racing)
    needs_source_weights: ClassVar[bool] = False  # it pulls toward the source: copy_blocks must not be 0

    @property
    def conf_name(self) -> str:
        """What conf calls it (a pixel variant is its procedure's name on `model: pixels`)."""
        return self.name

    # --- what conf declares and checks ---------------------------------------------------------------
    def knobs(self, given: dict[str, Any]) -> Knobs:
        """Its knobs from conf, validated by its own Knobs class (errors name the field)."""
        try:
            return self.Knobs.model_validate(given)
        except ValidationError as error:
            lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
            raise ValueError(f"{self.name}: {'; '.join(lines)}") from None

    def check(self, spec: TransferSpec, model: str, procedure: str) -> None:
        """Refuse a conf entry this strategy cannot train (a ValueError naming the field); `procedure`
        is what trains it (its own name, or `fit` for an objective strategy)."""
        if model not in self.models:
            raise ValueError(f"{self.conf_name} runs on model: {' or '.join(self.models)}, not {model}")
        if self.needs_source_weights and spec.copy_blocks == 0:
            raise ValueError(f"{self.name} keeps the model near the source: copy_blocks must not be 0")

    def grid(self, knobs: Knobs, lr_scales: list[float]) -> list[dict[str, float]]:
        """The candidates tried on validation: by default the multipliers of the learning rates."""
        return [{"lr_scale": scale} for scale in lr_scales]

    def frozen_at_end(self, spec: TransferSpec, total_blocks: int) -> int:
        """The first blocks still frozen when its training ends (the depth the advice reads)."""
        return block_count(spec.freeze_blocks, total_blocks)

    def earlier_phase(self, knobs: Knobs) -> Any:
        """The TrainingParams of a phase before the main training (LP-FT's probe), or None."""
        return None

    # --- training ------------------------------------------------------------------------------------
    def initial_model(self, task: TargetTask, config: StrategyConfig) -> tuple[nn.Module, TransferReport, dict]:
        """The target model before training: transferred from the source per the spec, its transfer
        report and its config (build_model's argument)."""
        model, report = transfer_model(task.source_config, task.source_state, task.num_classes, config.spec)
        return model, report, target_config(task.source_config, task.num_classes, config.spec)

    def objective(self, task: TargetTask, config: StrategyConfig, model: nn.Module, report) -> tuple[Any, int]:
        """What `fit` minimises, and the images it saw to set up: the target's cross-entropy by default."""
        return CrossEntropyObjective(), 0

    def train(self, task: TargetTask, config: StrategyConfig, result: StrategyResult, checkpoint: Path | None) -> None:
        """Train `result.model` (in place, or replace it), filling the result's history and images."""
        raise NotImplementedError

    def record_history(self, result: StrategyResult, measured: dict) -> None:
        """After training and the validation pass: a strategy without epochs writes its history here."""

    def stackable(self, config: StrategyConfig) -> bool:
        """Whether a candidate's seeds may train as one stack (headstart.ml.stacked_seeds)."""
        return False

    def tune(self, task: TargetTask, grid, seeds, configure, **tuning) -> TunedStrategy:
        """Its grid tuned on validation: `headstart.ml.strategies.tuning.train_tuned`, the one template."""
        from headstart.ml.strategies.tuning import train_tuned_grid

        return train_tuned_grid(task, grid, seeds, configure, **tuning)

    def not_applicable(self, task: TargetTask) -> str | None:
        """Why it cannot run on this task (it is left out and named), or None."""
        return None

    # --- what the estimate prices (headstart.ml.cost) -------------------------------------------------
    def phases(self, config: StrategyConfig) -> list[tuple[TrainConfig, bool]]:
        """The `fit` calls one training makes: (their TrainConfig, whether every parameter trains)."""
        return [(config.training, False)]

    def trainings(self, plan: Plan) -> int:
        return len(plan.candidates) * plan.seeds

    def price_order(self, config: StrategyConfig) -> float:
        """The order its candidates are priced in (a fit is timed once, on the first that needs it)."""
        return 0.0

    def price(self, meter: Meter, plan: Plan, config: StrategyConfig, scale: float) -> tuple[int, float, float]:
        """One training of one candidate: (optimizer steps, their seconds, all its seconds)."""
        return meter.epoch_seconds(plan, config, self.phases(config), scale)

    def seed_price(self, meter: Meter, plan: Plan, per_training: float, scale: float) -> float:
        """What one seed of a training costs (the cross-validated references price their folds here)."""
        return per_training

    def once_price(self, meter: Meter, plan: Plan, scale: float) -> float:
        """What it pays once per task, whatever its grid (set-up its task caches)."""
        return 0.0

    def fit_pipeline(self, config: StrategyConfig, shape: tuple[int, int]) -> Any:
        """The scikit-learn fit the estimate times for it (a strategy that fits one says which)."""
        raise NotImplementedError(f"{self.name} fits no scikit-learn model")

    def model_key(self, task: TargetTask, config: StrategyConfig) -> dict[str, Any]:
        """What tells its models apart for the estimate's timings."""
        return target_config(task.source_config, task.num_classes, config.spec)


STRATEGIES: dict[str, Strategy] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """File a strategy under its name (one instance serves every candidate: it keeps no state)."""
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy {cls.name} is registered twice")
    STRATEGIES[cls.name] = cls()
    return cls


def strategy_named(name: str) -> Strategy:
    if name not in STRATEGIES:
        known = sorted({strategy.conf_name for strategy in STRATEGIES.values()})
        raise ValueError(f"unknown strategy {name}; the strategies there are: {', '.join(known)}")
    return STRATEGIES[name]


def strategy_of(name: str, model: str = "source") -> Strategy:
    """The strategy a conf entry names, on the model it names (a classical reference on the raw pixels
    is the same procedure on another model: `linear_classifier` on pixels is `pixels_linear_classifier`)."""
    if model == "pixels" and f"pixels_{name}" in STRATEGIES:
        return STRATEGIES[f"pixels_{name}"]
    return strategy_named(name)


def train_strategy(task: TargetTask, config: StrategyConfig, checkpoint_path: Path | None = None) -> StrategyResult:
    """Build the target model and train it by its strategy (seeded by `training.seed`): the template
    every strategy's training goes through."""
    strategy = config.strategy
    torch.manual_seed(config.training.seed)  # the fresh head, and every layer a strategy does not copy
    model, report, model_config = strategy.initial_model(task, config)
    started = time.perf_counter()
    result = StrategyResult(model, report, model_config)
    strategy.train(task, config, result, checkpoint_path)
    result.train_seconds = time.perf_counter() - started
    strategy.record_history(result, measure_trained(result, task))
    count_parameters(result.model, report)  # after LP-FT's unfreezing, the count of the final phase
    result.model.cpu()
    return result


def measure_trained(result: StrategyResult, task: TargetTask) -> dict:
    """Count the images a training saw and measure its model on validation (what tuning compares)."""
    # a trained procedure counts per epoch; a classifier fitted once sees the training images once
    result.images_seen += sum(record.get("images_seen", 0) for record in result.history) or len(task.train[0])
    measured = evaluate(result.model, *task.validation)
    result.validation_accuracy, result.validation_loss = measured["accuracy"], measured["nll"]
    return measured
