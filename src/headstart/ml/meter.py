"""Times steps, forward passes and scikit-learn fits of the very models a grid trains, on this machine,
once per distinct shape: what headstart.ml.cost prices a grid from.

- a step is timed on the model the strategy trains (its architecture, copied and frozen part, head)
  with its objective (so an objective strategy's source and unlabelled batches and its frozen source
  model's passes are in it), on target images at the batch size, device, precision, memory format and
  compilation the training uses, by `train_one_epoch` itself: `WARMUP_STEPS` untimed, then the mean of
  at least `TIMED_STEPS` over `STEP_WINDOW_SECONDS`. A pass as seconds a batch + seconds an image,
  from two timed passes; a fit on up to `FIT_ROWS` rows of real features (fewer for wide ones).
The load of a shared machine is what it was while the steps were timed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch

from headstart.ml.config import TrainConfig
from headstart.ml.data.images import select
from headstart.ml.strategies.base import StrategyConfig, TargetTask, extract_features
from headstart.ml.training import (
    EpochContext,
    epoch_size,
    make_optimizer,
    make_schedule,
    predict_logits,
    resolve_device,
    steps_per_epoch,
    train_one_epoch,
    trains_in_bf16,
)

if TYPE_CHECKING:
    from headstart.ml.cost import Plan

WARMUP_STEPS = 1  # untimed: the first step builds oneDNN / cuDNN kernels and allocates
TIMED_STEPS = 2  # at least these many steps are timed, and more until STEP_WINDOW_SECONDS have passed
STEP_WINDOW_SECONDS = 0.3  # a window, not a few steps: on a shared machine the load comes and goes
MAX_TIMED_STEPS = 30
PASS_WINDOW_SECONDS = 0.2  # likewise for a forward pass
EVAL_BATCH = 512  # the batch of every eval-mode pass (predict_logits, extract_features)
FIT_ROWS = 20_000  # at most this many feature rows time a scikit-learn fit (the real rows, when fewer) ...
FIT_SAMPLE_SECONDS = 10.0  # ... or fewer, so their forward passes take about this long ...
FIT_ELEMENTS = 16_000_000  # ... and rows × features stay about this small (raw 224-px RGB pixels: 106 rows)


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
        return config.strategy.model_key(self.task, config)

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
        key = (
            _model_key(self._model_config(config)),
            None if everything_trains else (spec.freeze_blocks, tuple(spec.freeze_modules)),
            config.adaptation and (config.adaptation, config.knobs.model_dump_json(), spec.copy_blocks),
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
        model, report, _ = config.strategy.initial_model(task, config)
        if everything_trains:  # LP-FT's second phase
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        objective, _ = config.strategy.objective(task, config, model, report)
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
        model = config.strategy.initial_model(self.task, config)[0].to(device)
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
        key = (
            _model_key(self._model_config(config)),
            config.knobs.model_dump_json(),
            with_source,
            min(rows, cap),
            rows > cap,
        )
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
        model = config.strategy.initial_model(self.task, config)[0].to(resolve_device(config.training.device))
        features, targets = extract_features(model, images).double().numpy(), labels.numpy()
        keep = min(len(features), max(16, FIT_ELEMENTS // max(features.shape[1], 1)))

        def fitted(count: int) -> float:
            started = time.perf_counter()
            if len(set(targets[:count].tolist())) > 1:
                config.strategy.fit_pipeline(config, features[:count].shape).fit(features[:count], targets[:count])
            return time.perf_counter() - started

        seconds = fitted(keep)
        if not (extrapolated or keep < len(features)) or keep < 32:
            return seconds, keep, 1.0
        quarter = fitted(keep // 4)
        growth = math.log(max(seconds, 1e-6) / max(quarter, 1e-6)) / math.log(keep / (keep // 4))
        return seconds, keep, min(max(growth, 0.0), 1.0)

    def passes(self, config: StrategyConfig, images: int, scale: float = 1.0, bf16: bool = False) -> float:
        """`pass_seconds` at `scale` (a smaller input, priced by pixel count); nothing for no images."""
        return self.pass_seconds(config, images, bf16) * scale if images else 0.0

    def epoch_seconds(
        self, plan: Plan, config: StrategyConfig, phases: list[tuple[TrainConfig, bool]], scale: float
    ) -> tuple[int, float, float]:
        """A training of `fit` calls: (optimizer steps, their seconds, all its seconds): each phase's steps
        and a validation pass an epoch (at the training's precision), and the final validation pass."""
        steps, step_total, total = 0, 0.0, self.passes(config, plan.validation, scale)
        for training, everything_trains in phases:
            count = phase_steps(training, plan.train)
            step = self.step_seconds(config, training, everything_trains, plan.train) * scale
            bf16 = trains_in_bf16(training.precision, resolve_device(training.device))
            validation = training.epochs * self.passes(config, plan.validation, scale, bf16)
            steps, step_total, total = steps + count, step_total + count * step, total + count * step + validation
        return steps, step_total, total


def phase_steps(training: TrainConfig, train_count: int) -> int:
    """Optimizer steps of one `fit` on `train_count` labelled images, an upper bound (early stopping only
    shortens it): epochs × max(⌈n/batch⌉, min_batches_per_epoch), as `fit` fills its epochs."""
    return training.epochs * steps_per_epoch(train_count, training)
