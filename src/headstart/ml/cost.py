"""What a grid will cost, before any of it trains: the number of trainings and the seconds they should
take on this machine, from steps of the very models the grid trains, timed here.

Per strategy (a `Plan`: one config per candidate of its tuning grid, each trained once per seed):
- a training of `fit` (and `probe_then_finetune`, its probe included) costs its optimizer steps, an
  upper bound that early stopping can only shorten: epochs × max(⌈n/batch⌉, min_batches_per_epoch)
  (`training.steps_per_epoch`, what `fit` makes), times the seconds of one step; plus a validation
  pass an epoch (at the training's precision) and the final one (fp32);
- a step is timed on the model the strategy trains (its architecture, copied and frozen part, head)
  with its objective (so an adaptation kind's source and unlabelled batches and its frozen source
  model's passes are in it), on target images at the batch size, device, precision, memory format and
  compilation the training uses, by `train_one_epoch` itself: `WARMUP_STEPS` untimed, then the mean of
  at least `TIMED_STEPS` over `STEP_WINDOW_SECONDS`. Once per distinct shape (the candidates of a grid
  differ in rates or weights only); a pass as seconds a batch + seconds an image, from two timed passes;
- `linear_classifier`, `nearest_neighbours` and `tradaboost` train no epochs: they cost passes of the
  frozen body over images and scikit-learn fits (timed on up to `FIT_ROWS` rows of real features,
  fewer for wide ones, scaled by the rows); `importance_weighting` adds its domain classifier, once per strategy; every
  seed of the kept candidate adds its test pass.
Racing (`Plan.racing_eta`): a raced grid trains the share of the whole grid's epochs that successive
halving gives its candidates (`Plan.raced_share`, e.g. 5/9 for three candidates at η = 3).
Not counted: Kedro and MLflow, building and storing models, checkpoints, torch.compile's compilation.
An upper bound where frozen blocks are cached (headstart.ml.feature_cache): a step is timed through
the whole model, where cached training runs only what follows the frozen blocks; and where a
candidate's seeds train as one stack (headstart.ml.stacked_seeds): a step is timed for one seed alone.
The load of a shared machine is what it was while the steps were timed.
The cuts (fewer seeds, candidates, strategies, epochs; a smaller input) are priced from the same
measurements, so the advice costs nothing more.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch

from headstart.ml.data.images import select
from headstart.ml.errors import CostLimitError
from headstart.ml.models import build_model
from headstart.ml.racing import raced_epochs
from headstart.ml.strategies import (
    StrategyConfig,
    TargetTask,
    adaptation_objective,
    cross_validation_fits,
    extract_features,
    initial_model,
    linear_classifier_pipeline,
)
from headstart.ml.training import (
    CrossEntropyObjective,
    EpochContext,
    TrainConfig,
    epoch_size,
    make_optimizer,
    make_schedule,
    predict_logits,
    resolve_device,
    steps_per_epoch,
    train_one_epoch,
    trains_in_bf16,
)
from headstart.ml.transfer import target_config

logger = logging.getLogger(__name__)

WARMUP_STEPS = 1  # untimed: the first step builds oneDNN / cuDNN kernels and allocates
TIMED_STEPS = 2  # at least these many steps are timed, and more until STEP_WINDOW_SECONDS have passed
STEP_WINDOW_SECONDS = 0.3  # a window, not a few steps: on a shared machine the load comes and goes
MAX_TIMED_STEPS = 30
PASS_WINDOW_SECONDS = 0.2  # likewise for a forward pass
EVAL_BATCH = 512  # the batch of every eval-mode pass (predict_logits, extract_features)
FIT_ROWS = 20_000  # at most this many feature rows time a scikit-learn fit (the real rows, when fewer) ...
FIT_SAMPLE_SECONDS = 10.0  # ... or fewer, so their forward passes take about this long ...
FIT_ELEMENTS = 16_000_000  # ... and rows × features stay about this small (raw 224-px RGB pixels: 106 rows)
EPOCH_PROCEDURES = ("fit", "probe_then_finetune")


@dataclass(frozen=True)
class Plan:
    """One row of the estimate: a strategy's tuning grid (one config per candidate; the seed in them
    is not used), each candidate trained once per seed, on these many images."""

    name: str
    candidates: tuple[StrategyConfig, ...]
    seeds: int
    train: int  # labelled training images
    validation: int  # validation images, one pass an epoch and one at the end
    test: int = 0  # test images, one pass per seed of the kept candidate
    required: bool = False  # a baseline: never offered as a strategy to drop
    group: str | None = None  # what a user drops it by (a strategy of a study's rows; default: its name)
    racing_eta: int | None = None  # successive halving's η on the grid (headstart.ml.racing); None: whole grid

    @property
    def trainings(self) -> int:
        """Candidates × seeds; a classical reference on the pixels chooses its setting by cross-validation
        (its folds are priced in `classical_seconds`) and trains once per seed."""
        if self.candidates[0].model == "pixels":
            return self.seeds
        return len(self.candidates) * self.seeds

    @property
    def raced_share(self) -> float:
        """The share of the whole grid's epochs that racing trains (1 without racing, or for a procedure
        that is not raced): every candidate to the first rung, the survivors of each rung to the next."""
        training, count = self.candidates[0].training, len(self.candidates)
        if self.candidates[0].procedure != "fit" or not self.racing_eta:
            return 1.0
        return raced_epochs(training.epochs, count, self.racing_eta, training.min_epochs) / (count * training.epochs)


@dataclass(frozen=True)
class Knobs:
    """The parameters a cut names, as this pipeline's conf spells them."""

    seeds: str = "transfer.seeds"
    grid: str = (
        "the tuning grids (transfer.lr_scales; a strategy's lr_scales, adaptation.weight, boosting_rounds, neighbours)"
    )
    strategies: str = "transfer.strategies"
    epochs: str = "training.epochs (and probe.epochs) of each strategy"
    limit: str = "runtime.time_budget_minutes"
    fewest_seeds: int = 1  # what the seeds cut leaves (planned looks need 2 to make an interval)


def phases(config: StrategyConfig) -> list[tuple[TrainConfig, bool]]:
    """The `fit` calls one training makes: (their TrainConfig, whether every parameter trains)."""
    if config.procedure == "probe_then_finetune":
        return [(config.probe or config.training, False), (config.training, True)]
    if config.procedure == "fit":
        return [(config.training, False)]
    return []


def phase_steps(training: TrainConfig, train_count: int) -> int:
    """Optimizer steps of one `fit` on `train_count` labelled images, an upper bound (early stopping only
    shortens it): epochs × max(⌈n/batch⌉, min_batches_per_epoch), as `fit` fills its epochs."""
    return training.epochs * steps_per_epoch(train_count, training)


def training_steps(config: StrategyConfig, train_count: int) -> int:
    """Optimizer steps of one training, its phases summed (LP-FT's probe included); 0 without epochs."""
    return sum(phase_steps(training, train_count) for training, _ in phases(config))


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mean_seconds(run: Callable[[], Any], device: torch.device, runs: int, window: float, most: int) -> float:
    """The mean seconds of `run`: at least `runs` times, and on until `window` seconds (at most `most` times)."""
    times: list[float] = []
    while len(times) < runs or (sum(times) < window and len(times) < most):
        started = time.perf_counter()
        run()
        _wait(device)
        times.append(time.perf_counter() - started)
    return sum(times) / len(times)


def _model_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


@dataclass
class Meter:
    """Times steps, forward passes and fits on `task`'s own models and images, once per distinct shape."""

    task: TargetTask
    steps: dict[tuple, float] = field(default_factory=dict)  # seconds per optimizer step
    forwards: dict[tuple, tuple[float, float]] = field(default_factory=dict)  # a pass: seconds a batch, an image
    fits: dict[tuple, tuple[float, int, float]] = field(default_factory=dict)  # a fit: seconds, rows, growth
    seconds: float = 0.0  # spent measuring

    def _measuring_task(self, batch: int) -> TargetTask:
        """The task cut to what a few steps draw: a batch of target images, and of source and unlabelled
        images (an objective's set-up, e.g. importance weights, then costs next to nothing)."""
        task, take = self.task, torch.arange(min(batch, len(self.task.train[0])))
        source = task.source
        if source is not None:
            index = torch.arange(min(batch, len(source[0])))
            source = (select(source[0], index), source[1][index])
        unlabelled = task.unlabelled
        if unlabelled is not None:
            unlabelled = select(unlabelled, torch.arange(min(batch, len(unlabelled))))
        return replace(
            task, train=(task.train[0][take], task.train[1][take]), source=source, unlabelled=unlabelled, cache={}
        )

    def _model_config(self, config: StrategyConfig) -> dict[str, Any]:
        if config.model == "pixels":
            return {"pixels": config.procedure, "shape": list(self.task.train[0].shape[1:])}
        return target_config(self.task.source_config, self.task.num_classes, config.spec)

    def _timed(self, key: tuple, table: dict, measure: Callable[[], Any]) -> Any:
        if key not in table:
            started = time.perf_counter()
            with torch.random.fork_rng(devices=[]):  # the run's random state stays as it was
                table[key] = measure()
            self.seconds += time.perf_counter() - started
        return table[key]

    def step_seconds(self, config: StrategyConfig, training: TrainConfig, everything_trains: bool, count: int) -> float:
        batch = min(training.batch_size, epoch_size(count, training))
        spec = config.spec
        adaptation = config.adaptation
        key = (
            _model_key(self._model_config(config)),
            None if everything_trains else (spec.freeze_blocks, tuple(spec.freeze_modules)),
            adaptation and (adaptation.kind, adaptation.domain_hidden, spec.copy_blocks),
            batch,
            training.augment.max_rotation_deg > 0 or training.augment.max_shift > 0,
            training.device,
            training.precision,
            training.channels_last,
            training.compile,
            training.optimizer,
            training.clip_grad_norm is not None,
        )
        return self._timed(key, self.steps, lambda: self._time_steps(config, training, everything_trains, batch))

    def _time_steps(self, config: StrategyConfig, training: TrainConfig, everything_trains: bool, batch: int) -> float:
        """The mean seconds of one optimizer step of this training, as `fit` makes it."""
        task = self._measuring_task(batch)
        model, report, _ = initial_model(task, config)
        if everything_trains:  # LP-FT's second phase
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        objective = CrossEntropyObjective()
        if config.adaptation is not None:
            objective, _ = adaptation_objective(task, config, model, report)
        device = resolve_device(training.device)
        model.to(device, memory_format=torch.channels_last if training.channels_last else torch.preserve_format)
        objective.to(device)
        images, labels = task.train[0].to(device), task.train[1].to(device)
        order = (torch.arange(batch) % len(images)).to(device)
        optimizer = make_optimizer(model, objective, training)
        schedule = make_schedule(optimizer, training, steps_per_epoch(len(images), training))
        augment = training.augment.max_rotation_deg > 0 or training.augment.max_shift > 0
        context = EpochContext(device, trains_in_bf16(training.precision, device), augment, 1, slice(0, None, 1))
        trained = torch.compile(model) if training.compile else model
        generator = torch.Generator().manual_seed(0)

        def step() -> None:
            losses, *_ = train_one_epoch(
                trained, model, objective, optimizer, schedule, images, labels, order, training, generator, context
            )
            float(losses.sum())  # waits for the device

        for _ in range(WARMUP_STEPS):
            step()
        return mean_seconds(step, device, TIMED_STEPS, STEP_WINDOW_SECONDS, MAX_TIMED_STEPS)

    def pass_seconds(self, config: StrategyConfig, images: int, bf16: bool = False) -> float:
        """Seconds of an eval-mode pass of the strategy's model over `images` images in batches of
        EVAL_BATCH (a validation, test or feature pass; fp32 unless `bf16`, as fit validates)."""
        per_batch, per_image = self._pass_model(config, bf16)
        return math.ceil(images / EVAL_BATCH) * per_batch + images * per_image

    def _pass_model(self, config: StrategyConfig, bf16: bool) -> tuple[float, float]:
        device = resolve_device(config.training.device)
        key = (_model_key(self._model_config(config)), str(device), bf16)
        return self._timed(key, self.forwards, lambda: self._time_passes(config, device, bf16))

    def _time_passes(self, config: StrategyConfig, device: torch.device, bf16: bool) -> tuple[float, float]:
        """(seconds a batch, seconds an image) of a forward pass, from a pass of a few validation images and
        one of as many as a real pass takes at once (up to EVAL_BATCH)."""
        model = initial_model(self.task, config)[0].to(device)
        validation = self.task.validation[0]
        small, large = min(4, len(validation)), min(len(validation), EVAL_BATCH)
        few, many = validation[:small], validation[:large]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            predict_logits(model, few)  # warm-up
            few_seconds = mean_seconds(lambda: predict_logits(model, few), device, 2, PASS_WINDOW_SECONDS, 10)
            many_seconds = mean_seconds(lambda: predict_logits(model, many), device, 1, PASS_WINDOW_SECONDS, 5)
        if large <= small:
            return 0.0, many_seconds / large
        per_image = max(many_seconds - few_seconds, 0.0) / (large - small)
        return max(few_seconds - per_image * small, 0.0), per_image

    def fit_seconds(self, config: StrategyConfig, rows: int, with_source: bool = False) -> float:
        """Seconds of the strategy's scikit-learn fit on `rows` feature rows (of target images, and of
        source images for TrAdaBoost): timed on the real rows when there are at most FIT_ROWS (fewer for
        wide features); beyond, as t · (rows/timed)^g, g ∈ [0, 1] from a second fit on a quarter of
        them (an iterative solver's time grows slower than its rows: at most linearly)."""
        per_image = self._pass_model(config, False)[1]
        cap = int(min(FIT_ROWS, max(64, FIT_SAMPLE_SECONDS / max(per_image, 1e-9))))
        key = (_model_key(self._model_config(config)), config.classifier, with_source, min(rows, cap), rows > cap)
        seconds, timed, growth = self._timed(
            key, self.fits, lambda: self._time_fit(config, min(rows, cap), with_source, rows > cap)
        )
        return seconds * (rows / timed) ** growth if rows > timed else seconds

    def _time_fit(
        self, config: StrategyConfig, rows: int, with_source: bool, extrapolated: bool
    ) -> tuple[float, int, float]:
        images, labels = self.task.train
        if with_source and self.task.source is not None:
            more = torch.arange(min(max(rows - len(images), 0), len(self.task.source[0])))
            images = torch.cat([images[: min(rows, len(images))], self.task.source[0][more]])
            labels = torch.cat([labels[: min(rows, len(labels))], self.task.source[1][more]])
        images, labels = images[:rows], labels[:rows]
        model = initial_model(self.task, config)[0].to(resolve_device(config.training.device))
        features, targets = extract_features(model, images).double().numpy(), labels.numpy()
        keep = min(len(features), max(16, FIT_ELEMENTS // max(features.shape[1], 1)))

        def fitted(count: int) -> float:
            started = time.perf_counter()
            if len(set(targets[:count].tolist())) > 1:
                standardise = config.model != "pixels"
                linear_classifier_pipeline(config, features[:count].shape, standardise).fit(
                    features[:count], targets[:count]
                )
            return time.perf_counter() - started

        seconds = fitted(keep)
        if not (extrapolated or keep < len(features)) or keep < 32:
            return seconds, keep, 1.0
        quarter = fitted(keep // 4)
        growth = math.log(max(seconds, 1e-6) / max(quarter, 1e-6)) / math.log(keep / (keep // 4))
        return seconds, keep, min(max(growth, 0.0), 1.0)


def training_seconds(meter: Meter, plan: Plan, config: StrategyConfig, scale: float = 1.0) -> tuple[int, float, float]:
    """One training of one candidate: its optimizer steps, their seconds, and all its seconds (steps,
    passes and fits). `scale` multiplies every network pass (a smaller input, priced by pixel count)."""
    task = meter.task

    def passes(images: int, bf16: bool = False) -> float:
        return meter.pass_seconds(config, images, bf16) * scale

    if config.procedure in EPOCH_PROCEDURES:
        steps, step_total, total = 0, 0.0, passes(plan.validation)
        for training, everything_trains in phases(config):
            count = phase_steps(training, plan.train)
            step = meter.step_seconds(config, training, everything_trains, plan.train) * scale
            bf16 = trains_in_bf16(training.precision, resolve_device(training.device))
            validation = training.epochs * passes(plan.validation, bf16)
            steps, step_total, total = steps + count, step_total + count * step, total + count * step + validation
        return steps, step_total, total
    if config.procedure == "linear_classifier":
        return 0, 0.0, passes(plan.train) + passes(plan.validation) + meter.fit_seconds(config, plan.train)
    if config.procedure == "tradaboost":  # every round priced as a cold fit: its rounds start warm, so an upper bound
        source = len(task.source[0]) if task.source is not None else 0
        fits = config.boosting_rounds * meter.fit_seconds(config, plan.train + source, with_source=True)
        return 0, 0.0, passes(plan.train) + passes(plan.validation) + fits
    return 0, 0.0, passes(plan.validation)  # nearest_neighbours: storing the images, then one pass


def classical_seconds(meter: Meter, plan: Plan, scale: float = 1.0) -> float:
    """One seed of a classical reference on the pixels (`cross_validate_classical`): every candidate's
    cross-validation folds over the training + validation labels (a fit on the rest of the labels and a
    pass over the fold's images each), then the refit on all of them and its validation pass."""
    labelled = plan.train + plan.validation
    seconds = 0.0
    for config in plan.candidates:
        folds, fitted_rows = cross_validation_fits(labelled, meter.task.num_classes, config.folds)
        seconds += meter.pass_seconds(config, labelled) * scale
        if config.procedure == "linear_classifier":
            seconds += folds * meter.fit_seconds(config, fitted_rows)
    refit = plan.candidates[0]
    seconds += meter.pass_seconds(refit, labelled + plan.validation) * scale
    if refit.procedure == "linear_classifier":
        seconds += meter.fit_seconds(refit, labelled)
    return seconds


def once_seconds(meter: Meter, plan: Plan, scale: float = 1.0) -> float:
    """What a strategy pays once, whatever its grid: its seeds' test passes, and the set-up its task
    caches (TrAdaBoost's source features; importance weighting's domain classifier and its features)."""
    task, config = meter.task, plan.candidates[0]

    def passes(images: int) -> float:
        return meter.pass_seconds(config, images) * scale if images else 0.0

    seconds = plan.seeds * passes(plan.test)
    source = len(task.source[0]) if task.source is not None else 0
    if config.procedure == "tradaboost":
        seconds += passes(source)
    if config.adaptation is not None and config.adaptation.kind == "importance_weighting":
        unlabelled = len(task.unlabelled) if task.unlabelled is not None else 0
        seconds += passes(source) + passes(plan.train + unlabelled)
        seconds += meter.fit_seconds(config, source + plan.train + unlabelled, with_source=True)
    return seconds


def price(meter: Meter, plans: list[Plan], scale: float = 1.0) -> pd.DataFrame:
    """The estimate's table: one row per plan."""
    rows = []
    for plan in plans:
        # the candidate with the largest C first: a fit is timed once, at its slowest-converging setting
        candidates = sorted(plan.candidates, key=lambda config: -config.regularisation_c)
        trained = [training_seconds(meter, plan, config, scale) for config in candidates]
        steps = sum(s for s, _, _ in trained)
        step_seconds = sum(t for _, t, _ in trained)
        per_training = sum(total for _, _, total in trained) / len(trained)
        if plan.candidates[0].model == "pixels":  # a seed's share: its cross-validation of the whole grid
            per_training = classical_seconds(meter, plan, scale)
        rows.append(
            {
                "strategy": plan.name,
                "procedure": plan.candidates[0].procedure,
                "trainings": plan.trainings,
                "steps_per_training": round(steps / len(trained)),
                "seconds_per_step": step_seconds / steps if steps else math.nan,
                "seconds_per_training": per_training,
                "raced_share": plan.raced_share,
                "expected_seconds": plan.trainings * per_training * plan.raced_share + once_seconds(meter, plan, scale),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class Cut:
    what: str
    saves_seconds: float
    leaves_seconds: float


def _halved_epochs(config: StrategyConfig) -> StrategyConfig:
    def half(training: TrainConfig) -> TrainConfig:
        epochs = max(1, math.ceil(training.epochs / 2))
        return training.model_copy(update={"epochs": epochs, "min_epochs": min(training.min_epochs, epochs)})

    return config.model_copy(update={"training": half(config.training), "probe": config.probe and half(config.probe)})


def input_side(task: TargetTask) -> tuple[int, str]:
    """The side of the images the model computes on, and the parameter that sets it: a torchvision or
    timm model resizes to its own input size inside `forward`; the small CNN takes the stored images."""
    with torch.random.fork_rng(devices=[]):
        data_config = getattr(build_model(task.source_config), "data_config", None)
    if data_config is None:
        return int(task.train[0].shape[-1]), "ingest.image.size"
    return int(data_config.input_size), "pretrain.architecture.input_size"


def dearest_first(costs: pd.Series, required: set, total: float, limit: float | None) -> list:
    """The groups a cut drops (`costs`: wall seconds by group), dearest first, never a required one: until
    the rest fits `limit` minutes, or the three dearest without a limit."""
    droppable = [group for group in costs.index if group not in required]
    dropped, left = [], total
    for group in sorted(droppable, key=lambda group: -costs[group]):
        if (limit is not None and left <= limit * 60) or len(dropped) == (len(droppable) if limit else 3):
            break
        dropped.append(group)
        left -= costs[group]
    return dropped


def cuts(
    meter: Meter, plans: list[Plan], total: float, limit: float | None, knobs: Knobs, processes: int = 1
) -> list[Cut]:
    """Each way to spend less, alone, priced from the same measurements: one seed, one candidate per grid,
    fewer strategies (the dearest first, until the limit is met), half the epochs, half the input side."""

    def cut(what: str, cheaper: list[Plan], scale: float = 1.0) -> Cut:
        left = float(price(meter, cheaper, scale)["expected_seconds"].sum()) / processes if cheaper else 0.0
        return Cut(what, total - left, left)

    found = []
    seeds = max(plan.seeds for plan in plans)
    if seeds > knobs.fewest_seeds:
        fewest = knobs.fewest_seeds
        found.append(cut(f"{knobs.seeds} {seeds} → {fewest}", [replace(plan, seeds=fewest) for plan in plans]))
    widest = max(len(plan.candidates) for plan in plans)
    if widest > 1:
        fewer = [replace(plan, candidates=plan.candidates[:1]) for plan in plans]
        found.append(cut(f"{knobs.grid}: up to {widest} candidates → 1", fewer))
    groups = [plan.group or plan.name for plan in plans]
    costs = price(meter, plans)["expected_seconds"].groupby(groups, sort=False).sum() / processes
    required = {group for group, plan in zip(groups, plans) if plan.required}
    dropped = dearest_first(costs, required, total, limit)
    if dropped:
        named = ", ".join(f"{group} ({costs[group] / 60:.1f} min)" for group in dropped)
        kept = [plan for group, plan in zip(groups, plans) if group not in dropped]
        found.append(cut(f"drop from {knobs.strategies}: {named}", kept))
    if any(phases(config) for plan in plans for config in plan.candidates):
        halved = [replace(plan, candidates=tuple(_halved_epochs(c) for c in plan.candidates)) for plan in plans]
        found.append(cut(f"{knobs.epochs} halved", halved))
    side, parameter = input_side(meter.task)
    if side >= 64:
        found.append(
            cut(
                f"{parameter} {side} → {side // 2} (priced by pixel count, not measured)",
                plans,
                (side // 2 / side) ** 2,
            )
        )
    return found


@dataclass
class Estimate:
    table: pd.DataFrame  # one row per strategy
    cuts: list[Cut]
    measuring_seconds: float
    device: str
    precision: str
    processes: int = 1  # independent trainings run this many at once (a study's workers)

    @property
    def seconds(self) -> float:
        """The expected wall time: the trainings' seconds, shared among the processes."""
        return float(self.table["expected_seconds"].sum()) / self.processes

    @property
    def trainings(self) -> int:
        return int(self.table["trainings"].sum())

    def text(self, title: str) -> str:
        """The table and its total as the run prints them, narrow enough for a 100-column terminal (the
        stored CSV has every column)."""
        shown = pd.DataFrame(
            {
                "strategy": self.table["strategy"],
                "trainings": self.table["trainings"],
                "steps each": self.table["steps_per_training"],
                "s each": self.table["seconds_per_training"].round(2),
                "minutes": (self.table["expected_seconds"] / 60).round(2),
            }
        )
        return "\n".join(
            [
                f"{title}, before any training ({self.device}, {self.precision}; steps timed here, in "
                f"{self.measuring_seconds:.1f} s):",
                shown.to_markdown(index=False, tablefmt="simple", floatfmt=".2f"),
                f"Total: {self.trainings} trainings, about {self.seconds / 60:.1f} min ({self.seconds:.0f} s"
                + (f", {self.processes} processes at once" if self.processes > 1 else "")
                + "); an upper bound on the steps (early stopping only shortens a training).",
            ]
        )

    def summary(self, title: str) -> dict[str, Any]:
        """The totals (MLflow metrics), the cuts and the printed text."""
        return {
            "estimated_seconds": self.seconds,
            "estimated_minutes": self.seconds / 60,
            "estimated_trainings": self.trainings,
            "measuring_seconds": self.measuring_seconds,
            "processes": self.processes,
            "device": self.device,
            "precision": self.precision,
            "cuts": [vars(cut) for cut in self.cuts],
            "text": self.text(title),
        }


def estimate_cost(
    task: TargetTask,
    plans: list[Plan],
    limit_minutes: float | None = None,
    knobs: Knobs = Knobs(),
    processes: int = 1,
    meter: Meter | None = None,
) -> Estimate:
    """The cost of training every plan on `task`, from steps timed on this machine, and the cuts. With
    `processes`, the trainings run that many at once, each on its share of the cores: the wall time is
    taken as their seconds (timed on all the cores) shared among the processes. Estimates that share a
    `meter` share its timings (the advice's race and the comparison it stands in for)."""
    meter = meter or Meter(task)
    threads = torch.get_num_threads()
    if processes > 1:  # each process trains on one thread (headstart.ml.workers): time the steps so
        torch.set_num_threads(1)
    try:
        table = price(meter, plans)
    finally:
        torch.set_num_threads(threads)
    total = float(table["expected_seconds"].sum()) / processes
    training = plans[0].candidates[0].training
    device = resolve_device(training.device)
    precision = "bf16" if trains_in_bf16(training.precision, device) else "fp32"
    found = cuts(meter, plans, total, limit_minutes, knobs, processes)
    return Estimate(table, found, meter.seconds, str(device), precision, processes)


def check_limit(summary: dict[str, Any], limit_minutes: float | None, knobs: Knobs = Knobs()) -> None:
    """Stop (CostLimitError) when the estimate exceeds the limit, naming what to cut and what each saves."""
    minutes = summary["estimated_minutes"]
    if limit_minutes is None or minutes <= limit_minutes:
        return
    lines = [
        f"- {cut['what']}: saves {cut['saves_seconds'] / 60:.1f} min (leaves {cut['leaves_seconds'] / 60:.1f})"
        for cut in summary["cuts"]
    ]
    raise CostLimitError(
        "\n".join(
            [
                f"the estimate, {minutes:.1f} min for {summary['estimated_trainings']} trainings, exceeds "
                f"{knobs.limit} = {limit_minutes:g}; nothing was trained. What each of these alone saves:",
                *lines,
                f"or raise {knobs.limit}.",
            ]
        )
    )
