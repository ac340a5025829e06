"""The multi-task comparison's and its sweeps' first look, priced before any training.

A method's step is timed here on one thread (as a worker trains it): its first network trains an epoch
of 1 and then of 4 optimizer steps; the difference is the seconds of 3 steps, and what the 1-step
epoch took beyond its step (the validation pass, building the network) is counted again in every
epoch. A row's trainings are its networks × seeds × candidates; its seconds are its networks × seeds
× the epochs successive halving trains over the grid (headstart.ml.racing.raced_epochs) × (the steps
an epoch × the step + the epoch's rest): an upper bound on the steps, since early stopping only
shortens a training. The table, totals and cuts are headstart.ml.cost's.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch

from headstart.ml.cost import Cut, Estimate, Knobs, dearest_first
from headstart.ml.multitask.training import MethodRecipe
from headstart.ml.racing import raced_epochs
from headstart.ml.training import resolve_device, steps_per_epoch, trains_in_bf16

TIMED_STEPS = (1, 4)


@dataclass(frozen=True)
class MethodPlan:
    """One row of the estimate: a method's recipe at one point, trained on `seeds` seeds."""

    name: str
    recipe: MethodRecipe
    seeds: int
    group: str  # what a cut drops it by: the method's name
    required: bool = False  # the single-task baseline


def _config_with(recipe: MethodRecipe, epochs: int, seed: int, setting: dict) -> object:
    config = recipe.config_for(seed, setting)
    return config.model_copy(update={"epochs": epochs, "min_epochs": 0, "min_batches_per_epoch": None})


class StepCost(NamedTuple):
    """Seconds of one optimizer step of a method's networks, and of what an epoch adds to its steps (the
    validation pass, and building the networks counted in every epoch: an upper bound)."""

    step: float
    epoch: float


class StepTimer:
    """A method's `StepCost`, timed once per network shape and method."""

    def __init__(self) -> None:
        self.seconds: dict[str, StepCost] = {}
        self.measuring_seconds = 0.0

    def __call__(self, recipe: MethodRecipe) -> StepCost:
        key = json.dumps([recipe.sharing, recipe.trunk, recipe.classes, recipe.head, recipe.grid[0]], default=str)
        if key not in self.seconds:
            started = time.perf_counter()
            self.seconds[key] = self._measure(recipe)
            self.measuring_seconds += time.perf_counter() - started
        return self.seconds[key]

    @staticmethod
    def _measure(recipe: MethodRecipe) -> StepCost:
        setting, part = recipe.grid[0], recipe.parts[0]
        batch = recipe.config_for(0, setting).batch_size
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        seconds = []
        try:
            with tempfile.TemporaryDirectory(prefix="headstart-mt-cost-") as scratch:
                for steps in TIMED_STEPS:
                    images, labels = recipe.train
                    count = min(len(images), batch * steps)
                    timed = replace(
                        recipe,
                        train=(images[:count], {t: y[:count] for t, y in labels.items()}),
                        config_for=lambda seed, s, epochs=-(-steps * batch // count): _config_with(
                            recipe, epochs, seed, s
                        ),
                        checkpoint_dir=None,
                    )
                    started = time.perf_counter()
                    timed.train_setting(setting, part, [0], None, Path(scratch))
                    seconds.append(time.perf_counter() - started)
        finally:
            torch.set_num_threads(threads)
        per_step = (seconds[1] - seconds[0]) / (TIMED_STEPS[1] - TIMED_STEPS[0])
        per_step = max(per_step, seconds[1] / TIMED_STEPS[1] / 4)  # noise cannot make it ~0
        networks = len(recipe.parts)
        return StepCost(per_step * networks, max(seconds[0] - per_step, 0.0) * networks)


def price(plans: Sequence[MethodPlan], timer: StepTimer, epochs_scale: float = 1.0) -> pd.DataFrame:
    rows = []
    for plan in plans:
        recipe = plan.recipe
        config = recipe.config_for(0, recipe.grid[0])
        epochs = max(1, round(config.epochs * epochs_scale))
        per_epoch = steps_per_epoch(len(recipe.train[0]), config)
        cost = timer(recipe)
        epoch_seconds = per_epoch * cost.step + cost.epoch
        grid_epochs = raced_epochs(epochs, len(recipe.grid), recipe.eta, min(config.min_epochs, epochs))
        networks = len(recipe.parts)
        rows.append(
            {
                "strategy": plan.name,
                "trainings": plan.seeds * networks * len(recipe.grid),
                "steps_per_training": epochs * per_epoch,
                "seconds_per_training": epochs * epoch_seconds / networks,
                "expected_seconds": plan.seeds * grid_epochs * epoch_seconds,
            }
        )
    return pd.DataFrame(rows)


def estimate_methods(
    plans: Sequence[MethodPlan],
    knobs: Knobs,
    limit_minutes: float | None,
    processes: int,
    timer: StepTimer | None = None,
) -> Estimate:
    """The first look's table and the cuts, each priced alone: fewer seeds, one candidate per grid, the
    dearest methods dropped (never the baseline), half the epochs."""
    timer = timer or StepTimer()
    table = price(plans, timer)
    total = float(table["expected_seconds"].sum()) / processes

    def cut(what: str, cheaper: Sequence[MethodPlan], epochs_scale: float = 1.0) -> Cut:
        left = float(price(cheaper, timer, epochs_scale)["expected_seconds"].sum()) / processes if cheaper else 0.0
        return Cut(what, total - left, left)

    found = []
    seeds = max(plan.seeds for plan in plans)
    if seeds > knobs.fewest_seeds:
        cheaper = [replace(plan, seeds=knobs.fewest_seeds) for plan in plans]
        found.append(cut(f"{knobs.seeds} {seeds} → {knobs.fewest_seeds}", cheaper))
    widest = max(len(plan.recipe.grid) for plan in plans)
    if widest > 1:
        cheaper = [replace(plan, recipe=replace(plan.recipe, grid=plan.recipe.grid[:1])) for plan in plans]
        found.append(cut(f"{knobs.grid}: up to {widest} candidates → 1", cheaper))
    costs = table["expected_seconds"].groupby([plan.group for plan in plans], sort=False).sum() / processes
    required = {plan.group for plan in plans if plan.required}
    dropped = dearest_first(costs, required, total, limit_minutes)
    if dropped:
        named = ", ".join(f"{group} ({costs[group] / 60:.1f} min)" for group in dropped)
        found.append(cut(f"drop from {knobs.strategies}: {named}", [p for p in plans if p.group not in dropped]))
    found.append(cut(f"{knobs.epochs} halved", plans, 0.5))
    config = plans[0].recipe.config_for(0, plans[0].recipe.grid[0])
    device = resolve_device(config.device)
    precision = "bf16" if trains_in_bf16(config.precision, device) else "fp32"
    return Estimate(table, found, timer.measuring_seconds, str(device), precision, processes)
