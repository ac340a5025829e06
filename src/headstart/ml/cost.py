"""What a grid will cost, before any of it trains: the number of trainings and the seconds they should
take on this machine, from steps of the very models the grid trains, timed here (headstart.ml.meter).

Per strategy (a `Plan`: one config per candidate of its tuning grid, each trained once per seed), its
strategy prices one training (`Strategy.price`):
- a network trained by `fit` (LP-FT's probe included: its `phases`) costs its optimizer steps, an
  upper bound that early stopping can only shorten: epochs × max(⌈n/batch⌉, min_batches_per_epoch)
  (`training.steps_per_epoch`, what `fit` makes), times the seconds of one step timed with its
  objective; plus a validation pass an epoch (at the training's precision) and the final one (fp32);
- a strategy without epochs (a linear classifier, k-NN, TrAdaBoost) costs passes of the frozen body
  over images and scikit-learn fits; a classical reference its cross-validation folds
  (`Strategy.seed_price`); set-up a task caches is paid once (`Strategy.once_price`: TrAdaBoost's source
  features, importance weighting's domain classifier); every seed of the kept candidate adds its test pass.
Racing (`Plan.racing_eta`): a raced grid trains the share of the whole grid's epochs that successive
halving gives its candidates (`Plan.raced_share`, e.g. 5/9 for three candidates at η = 3).
Not counted: Kedro and MLflow, building and storing models, checkpoints, torch.compile's compilation.
An upper bound where frozen blocks are cached (headstart.ml.feature_cache): a step is timed through
the whole model, where cached training runs only what follows the frozen blocks; and where a
candidate's seeds train as one stack (headstart.ml.stacked_seeds): a step is timed for one seed alone.
The cuts (fewer seeds, candidates, strategies, epochs; a smaller input) are priced from the same
measurements, so the advice costs nothing more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch

from headstart.ml.config import TrainConfig
from headstart.ml.errors import CostLimitError
from headstart.ml.meter import Meter, phase_steps
from headstart.ml.models import build_model
from headstart.ml.racing import raced_epochs
from headstart.ml.strategies.base import StrategyConfig, TargetTask
from headstart.ml.training import resolve_device, trains_in_bf16

__all__ = ["Meter", "phase_steps"]  # re-exported: the estimate's callers time with the same meter

logger = logging.getLogger(__name__)


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
        return self.candidates[0].strategy.trainings(self)

    @property
    def raced_share(self) -> float:
        """The share of the whole grid's epochs that racing trains (1 without racing, or for a procedure
        that is not raced): every candidate to the first rung, the survivors of each rung to the next."""
        training, count = self.candidates[0].training, len(self.candidates)
        if not self.candidates[0].strategy.raced or not self.racing_eta:
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
    return config.strategy.phases(config)


def training_steps(config: StrategyConfig, train_count: int) -> int:
    """Optimizer steps of one training, its phases summed (LP-FT's probe included); 0 without epochs."""
    return sum(phase_steps(training, train_count) for training, _ in phases(config))


def price(meter: Meter, plans: list[Plan], scale: float = 1.0) -> pd.DataFrame:
    """The estimate's table: one row per plan."""
    rows = []
    for plan in plans:
        strategy = plan.candidates[0].strategy
        candidates = sorted(plan.candidates, key=strategy.price_order)
        trained = [strategy.price(meter, plan, config, scale) for config in candidates]
        steps = sum(s for s, _, _ in trained)
        step_seconds = sum(t for _, t, _ in trained)
        per_training = strategy.seed_price(meter, plan, sum(total for _, _, total in trained) / len(trained), scale)
        rows.append(
            {
                "strategy": plan.name,
                "procedure": strategy.name,
                "trainings": plan.trainings,
                "steps_per_training": round(steps / len(trained)),
                "seconds_per_step": step_seconds / steps if steps else math.nan,
                "seconds_per_training": per_training,
                "raced_share": plan.raced_share,
                "expected_seconds": plan.trainings * per_training * plan.raced_share
                + plan.seeds * meter.passes(plan.candidates[0], plan.test, scale)
                + strategy.once_price(meter, plan, scale),
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

    return config.with_trainings(half)


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
