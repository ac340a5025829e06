"""The one tuning rule every strategy gets, the baselines included: each candidate of its grid is trained
over all seeds and the one with the best mean validation accuracy is kept (ties: lower mean validation
loss). A raced strategy's grid goes through successive halving (headstart.ml.racing); a classical
reference scores its grid by cross-validation instead (its `tune`, headstart.ml.strategies.classical).
Only the validation split is seen: the test split cannot sway the choice.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import torch

from headstart.ml import progress
from headstart.ml.feature_cache import cache_depth
from headstart.ml.racing import rung_epochs, setting_text, successive_halving
from headstart.ml.stacked_seeds import fit_seeds_together, seeds_per_stack, stack_size, why_not_stacked
from headstart.ml.strategies.base import (
    StrategyConfig,
    StrategyResult,
    TargetTask,
    measure_trained,
    train_strategy,
)
from headstart.ml.transfer import count_parameters
from headstart.ml.workers import Workers

logger = logging.getLogger(__name__)
TUNED_SETTINGS = ("lr_scale", "neighbours", "adaptation_weight", "boosting_rounds")  # what a tuning grid varies
Configure = Callable[[dict[str, float], int], StrategyConfig]


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


def seed_stacks(task: TargetTask, configs: list[StrategyConfig]) -> list[list[int]]:
    """The seeds (indices into `configs`) that train together in one stack (headstart.ml.stacked_seeds),
    and each other seed alone: stacks are for a strategy that says it stacks (a whole-model `fit`)."""
    first, alone = configs[0], [[index] for index in range(len(configs))]
    if len(configs) < 2 or not first.strategy.stackable(first):
        return alone
    if seeds_per_stack(first.training) < 2:
        return alone
    torch.manual_seed(first.training.seed)
    model, _, _ = first.strategy.initial_model(task, first)
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
        built.append(config.strategy.initial_model(task, config))
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


_known_tasks: dict[str, TargetTask] = {}  # a worker's tasks, so each computes a task's cache once


def train_seed_stack(
    task: TargetTask, configs: list[StrategyConfig], checkpoint_path: Path | None
) -> tuple[list[StrategyResult], int]:
    """One job of a grid: the seeds of one stack (one seed, or seeds trained together), and the images
    its frozen prefix took (where the job ran: a worker process has its own feature cache). A
    worker keeps the tasks it has seen, so what every seed of a task shares (source features, importance
    weights) is computed once per worker, not once per job."""
    task = _known_tasks.setdefault(task.key, task)
    while len(_known_tasks) > 4:
        _known_tasks.pop(next(iter(_known_tasks)))
    if len(configs) > 1:
        trained = train_strategies_together(task, configs, checkpoint_path)
    else:
        trained = [train_strategy(task, configs[0], checkpoint_path)]
    return trained, sum(result.prefix_images for result in trained)


def train_tuned(
    task: TargetTask,
    grid: list[dict[str, float]],
    seeds: list[int],
    configure: Configure,
    checkpoint_for: Callable[[dict[str, float], int], Path | None] = lambda setting, seed: None,
    eta: int | None = None,
    task_for: Callable[[dict[str, float]], TargetTask] | None = None,
    rung_floor: int = 1,
    workers: Workers | None = None,
) -> TunedStrategy:
    """The kept candidate of a strategy's grid over `seeds`, as its strategy tunes it (`Strategy.tune`:
    `train_tuned_grid` for a network, cross-validation for a classical reference)."""
    strategy = configure(grid[0], seeds[0]).strategy
    tuning = {"checkpoint_for": checkpoint_for, "eta": eta, "task_for": task_for, "rung_floor": rung_floor}
    return strategy.tune(task, grid, seeds, configure, workers=workers, **tuning)


@dataclass
class GridTraining:
    """The trainings of one grid: each (candidate, seed) submitted to the workers, paused at a rung and
    resumed from its checkpoint, its seconds and images summed over its calls."""

    task: TargetTask
    grid: list[dict[str, float]]
    seeds: list[int]
    configure: Configure
    checkpoint_for: Callable[[dict[str, float], int], Path | None]
    task_for: Callable[[dict[str, float]], TargetTask] | None
    workers: Workers
    scratch: str
    raced: bool
    # per (candidate, seed), over its paused and resumed calls: seconds, images of one-off setup (fitted
    # once per call, e.g. importance weights' domain classifier), images in all
    spent: dict[tuple[int, int], tuple[float, int, int]] = field(default_factory=dict)
    prefix_images: int = 0

    def checkpoint(self, candidate: int, seed: int) -> Path | None:
        path = self.checkpoint_for(self.grid[candidate], seed)
        return (
            path if path is not None or not self.raced else Path(self.scratch) / f"candidate{candidate}-seed{seed}.pt"
        )

    def configured(self, candidate: int, seed: int, pause_after: int | None) -> StrategyConfig:
        config = self.configure(self.grid[candidate], seed)
        if pause_after is None:
            return config
        return config.model_copy(update={"training": config.training.model_copy(update={"pause_after": pause_after})})

    def submit(self, candidate: int, pause_after: int | None) -> list[tuple[list[int], Any]]:
        configs = [self.configured(candidate, seed, pause_after) for seed in self.seeds]
        own_task = self.task_for(self.grid[candidate]) if self.task_for else self.task
        jobs = []
        for stack in seed_stacks(own_task, configs):
            stacked_seeds = [self.seeds[index] for index in stack]
            for seed in stacked_seeds:  # a line per seed's training, stacked or not
                together = f" (stacked with seeds {stacked_seeds})" if len(stack) > 1 else ""
                logger.info("Training seed %d with %s%s", seed, self.grid[candidate], together)
            path = self.checkpoint(candidate, stacked_seeds[0])
            if path is not None and len(stack) > 1:
                path = path.with_name(f"seeds-together-{path.name}")
            job = self.workers.submit(train_seed_stack, own_task, [configs[index] for index in stack], path)
            jobs.append((stacked_seeds, job))
        return jobs

    def collect(self, candidate: int, jobs: list[tuple[list[int], Any]]) -> dict[int, StrategyResult]:
        results = {}
        for stacked_seeds, job in jobs:
            try:
                trained, prefix = job.result()
            except FloatingPointError as error:  # name the seed and setting, not only the epoch
                seed = getattr(error, "seed", stacked_seeds[0])
                raise FloatingPointError(f"seed {seed}, {setting_text(self.grid[candidate])}: {error}") from error
            self.prefix_images += prefix
            for seed, result in zip(stacked_seeds, trained):
                seconds, setup, _ = self.spent.get((candidate, seed), (0.0, 0, 0))
                epochs_images = sum(r.get("images_seen", 0) for r in result.history)
                setup += result.images_seen - epochs_images
                result.train_seconds, result.images_seen = seconds + result.train_seconds, setup + epochs_images
                self.spent[candidate, seed] = result.train_seconds, setup, result.images_seen
                results[seed] = result
        return results

    def train_all(self, candidates: list[int], pause_after: int | None) -> dict[int, dict[int, StrategyResult]]:
        submitted = {candidate: self.submit(candidate, pause_after) for candidate in candidates}
        return {candidate: self.collect(candidate, jobs) for candidate, jobs in submitted.items()}

    def forget(self, candidate: int) -> None:
        for seed in self.seeds:
            path = self.checkpoint(candidate, seed)
            if path is not None:
                for file in path.parent.glob(f"*{path.name}"):
                    file.unlink()


def train_tuned_grid(
    task: TargetTask,
    grid: list[dict[str, float]],
    seeds: list[int],
    configure: Configure,
    checkpoint_for: Callable[[dict[str, float], int], Path | None] = lambda setting, seed: None,
    eta: int | None = None,
    task_for: Callable[[dict[str, float]], TargetTask] | None = None,
    rung_floor: int = 1,
    workers: Workers | None = None,
) -> TunedStrategy:
    """Keep the candidate setting with the best mean validation accuracy over the seeds (ties: lower
    mean validation loss). With `eta`, a raced strategy's grid goes through successive halving, else
    every candidate trains to the end. A finished training's checkpoints are deleted. `task_for` gives a
    candidate its own task (the advice's race: each strategy from its own source); the target data must
    be `task`'s. No rung comes before `rung_floor` epochs (nor before min_epochs). With `workers`, every
    (candidate, seed) training of a rung runs at once in their processes; each training seeds itself,
    so where it runs does not change what it draws."""
    workers = workers or Workers(1)
    first = configure(grid[0], seeds[0])
    training = first.training
    earliest = max(training.min_epochs, rung_floor)
    budgets = rung_epochs(training.epochs, len(grid), eta or 1, earliest) if first.strategy.raced else []
    if workers.scratch is not None:  # a cluster's: paused candidates resume on whichever worker is free
        Path(workers.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="headstart-race-", dir=workers.scratch) as scratch:
        run = GridTraining(task, grid, seeds, configure, checkpoint_for, task_for, workers, scratch, bool(budgets))
        candidates = list(range(len(grid)))
        alive, rungs = successive_halving(
            candidates,
            budgets,
            eta or 1,
            score_rung=lambda alive, epochs: {c: mean_score(r) for c, r in run.train_all(alive, epochs).items()},
        )
        progress.done(len(seeds) * (len(candidates) - len(alive)))  # cut by a rung: their trainings ended
        best, best_score, finals, histories = None, None, {}, {}
        for candidate, results in run.train_all(alive, None).items():
            progress.done(len(results))
            run.forget(candidate)
            score = mean_score(results)
            finals[setting_text(grid[candidate])] = score
            histories[setting_text(grid[candidate])] = {seed: result.history for seed, result in results.items()}
            if best_score is None or score > best_score:
                best_score, best = score, TunedStrategy(grid[candidate], results, score[0])
        for candidate in set(candidates) - set(alive):
            run.forget(candidate)
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
    best.grid_seconds = sum(seconds for seconds, _, _ in run.spent.values())
    best.grid_images_seen = sum(images for _, _, images in run.spent.values())
    best.prefix_images = run.prefix_images
    return best
