"""The transfer comparison's trainings: one strategy's tuned seeds (`StrategyTrainer`), what cannot run
(`not_applicable`), and the planned looks after the first (`later_looks`): seeds go only to the rows
whose verdict is still open, cheapest decision first while the time budget lasts.

The first look (every row's first seeds, its setting tuned there on validation) is trained by each
strategy's own node; its setting is kept for the later looks, so a later seed trains the one kept
candidate (no tuning sees the test split, which the looks' decisions read).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headstart.ml import progress
from headstart.ml.fingerprints import fingerprint
from headstart.ml.looks import Decision, LookDesign, decide
from headstart.ml.models.stored import StoredModel
from headstart.ml.racing import setting_text
from headstart.ml.run_records import strategy_evaluation, tuned_models
from headstart.ml.strategies import StrategyConfig, TargetTask, TunedStrategy, train_tuned
from headstart.ml.workers import Workers

logger = logging.getLogger(__name__)


@dataclass
class StrategyTrainer:
    """One strategy of a comparison: its task, its tuning grid, how a (setting, seed) is configured,
    labelled (its live MLflow run) and checkpointed (a killed run resumes)."""

    name: str
    task: TargetTask
    grid: list[dict[str, float]]
    config_of: Callable[[dict[str, float], int], StrategyConfig]  # the strategy's conf at a setting and seed
    described: dict[str, Any]  # its conf entry, as stored with each model
    uses: str
    checkpoint_dir: Path
    eta: int | None = None

    def label(self, setting: Mapping[str, float], seed: int) -> str:
        """The training's name in its live MLflow child run: a candidate of a grid says which."""
        return f"{self.name} seed {seed}" + (f" ({setting_text(setting)})" if len(self.grid) > 1 else "")

    def configure(self, setting: dict[str, float], seed: int) -> StrategyConfig:
        """The (setting, seed) as trained: labelled for its live run, no bar of its own (the grid has one)."""
        config = self.config_of(setting, seed)
        own = {"label": self.label(setting, seed), "progress": False}
        return config.with_trainings(lambda training: training.model_copy(update=own))

    def checkpoint(self, setting: dict[str, float], seed: int) -> Path:
        task = self.task
        extra = [t for t in (task.source and task.source[0], task.unlabelled) if t is not None]
        made_from = fingerprint(self.described, setting, seed, task.source_state, *task.train, *task.validation, *extra)
        return self.checkpoint_dir / f"{self.name}-seed{seed}-{made_from[:16]}.pt"

    def not_applicable(self) -> str | None:
        """Why it cannot run on this task (it is left out before any training and named), or None."""
        return self.config_of(self.grid[0], 0).strategy.not_applicable(self.task)

    def train(self, seeds: Sequence[int], workers: Workers, setting: dict[str, float] | None = None) -> TunedStrategy:
        """The grid tuned over `seeds` on validation, or only `setting` (a later look's seeds)."""
        grid = [setting] if setting is not None else self.grid
        try:
            return train_tuned(self.task, grid, list(seeds), self.configure, self.checkpoint, self.eta, workers=workers)
        except FloatingPointError as error:
            raise FloatingPointError(f"strategy {self.name}, {error}") from error

    def models(self, tuned: TunedStrategy, classes: list[str], image_size: int) -> dict[str, StoredModel]:
        return tuned_models(
            tuned, self.name, self.described, self.uses, classes, image_size, self.label, tuned.prefix_images
        )


def kept_setting(evaluation: Mapping, grid: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The setting a strategy's first look kept, read from its evaluation (what its grid varies)."""
    first = evaluation["seeds"][0]
    return {name: first[name] for name in grid[0]}


@dataclass
class LookState:
    """Where the looks stand: each row's test accuracy per seed, its decision, what was trained and cut."""

    accuracy: dict[str, dict[int, float]]
    seconds_per_seed: dict[str, float]
    decisions: dict[str, Decision] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # why an open row stayed open
    looks: list[dict] = field(default_factory=list)

    def gains(self, row: str, best: str, seeds: Sequence[int]) -> list[float]:
        return [100 * (self.accuracy[row][s] - self.accuracy[best][s]) for s in seeds if s in self.accuracy[row]]


def plan_look(
    open_rows: Sequence[str], new_seeds: int, seconds_per_seed: Mapping[str, float], best: str, seconds_left: float
) -> tuple[list[str], list[str], float]:
    """The open rows that get the next look's seeds (cheapest decision first) while the estimate fits
    the time left, and those cut; with the best baseline's seeds in the estimate. When everything
    fits, every open row runs: the plan then depends on the results only, never on the clock."""
    ordered = sorted(open_rows, key=lambda row: (seconds_per_seed[row], row))
    cost = new_seeds * seconds_per_seed[best]
    chosen, cut = [], []
    for row in ordered:
        extra = new_seeds * seconds_per_seed[row]
        if cost + extra <= seconds_left:
            chosen.append(row)
            cost += extra
        else:
            cut.append(row)
    if not chosen:
        cost = 0.0
    return chosen, cut, cost


def seeds_text(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}"


def later_looks(
    trainers: Mapping[str, StrategyTrainer],
    first: Mapping[str, Mapping],
    design: LookDesign,
    seeds: Sequence[int],
    best: str,
    workers: Workers,
    seconds_left: Callable[[], float],
    evaluate: Callable[[str, dict[str, StoredModel]], tuple[dict, list[dict]]],
    classes: list[str],
    image_size: int,
) -> tuple[dict, dict[str, list[dict]], dict[str, StoredModel], list[dict]]:
    """Decide every row at each planned look and train the next look's seeds for the open ones.
    `first` holds each strategy's first-look evaluation; `seconds_left()` the budget's wall seconds
    left (math.inf without one), read only when a look's plan is made. Returns the looks' record,
    each strategy's later seeds' evaluation records, their models and their child-run records."""
    state = LookState(
        {name: {s["seed"]: s["accuracy"] for s in e["seeds"]} for name, e in first.items()},
        {name: sum(s["train_seconds"] for s in e["seeds"]) / len(e["seeds"]) for name, e in first.items()},
    )
    rows = [name for name in first if name != best]
    later: dict[str, list[dict]] = {name: [] for name in first}
    models: dict[str, StoredModel] = {}
    runs: list[dict] = []
    open_rows = list(rows)
    for look, n in enumerate(design.looks):
        looked = [seeds[i] for i in range(n)]
        for row in open_rows:
            state.decisions[row] = decide(state.gains(row, best, looked), design, look)
        decided = [row for row in open_rows if state.decisions[row].verdict != "open"]
        open_rows = [row for row in open_rows if state.decisions[row].verdict == "open"]
        record = {"seeds": n, "decided": {row: state.decisions[row].verdict for row in decided}, "open": open_rows}
        state.looks.append(record)
        if look == len(design.looks) - 1 or not open_rows:
            for row in open_rows:
                state.reasons[row] = f"seeds ran out at n = {n}"
            break
        new_seeds = [seeds[i] for i in range(n, design.looks[look + 1])]
        wall_left = seconds_left() * workers.count
        chosen, cut, planned = plan_look(open_rows, len(new_seeds), state.seconds_per_seed, best, wall_left)
        record["planned_seconds"] = planned / workers.count
        record["cut"] = [f"{row}, {seeds_text(new_seeds)}, about {duration(new_seeds, state, row)}" for row in cut]
        for row in cut:
            state.reasons[row] = f"time ran out before n = {design.looks[look + 1]}"
            logger.info("Not run for lack of time: %s", record["cut"][cut.index(row)])
        open_rows = chosen
        if not chosen:
            break
        logger.info(
            "Look %d of %d: %d rows decided, %d open get %s (about %.1f min)",
            look + 1,
            len(design.looks),
            len(rows) - len(open_rows) - len(cut),
            len(chosen),
            seeds_text(new_seeds),
            planned / workers.count / 60,
        )
        to_train = [best, *chosen]
        progress.planned(len(new_seeds) * len(to_train), look + 2, len(design.looks))
        settings = {name: kept_setting(first[name], trainers[name].grid) for name in to_train}
        with ThreadPoolExecutor(len(to_train)) as threads:  # each waits on its trainings in the workers
            futures = {
                name: threads.submit(trainers[name].train, new_seeds, workers, settings[name]) for name in to_train
            }
            tuned = {name: future.result() for name, future in futures.items()}
        for name, result in tuned.items():
            trained = trainers[name].models(result, classes, image_size)
            evaluation, new_runs = evaluate(name, trained)
            later[name] += evaluation["seeds"]
            runs += new_runs
            models |= {f"{name}-{key}": model for key, model in trained.items()}
            state.accuracy[name] |= {s["seed"]: s["accuracy"] for s in evaluation["seeds"]}
    record = looks_record(state, design, rows, best, seeds)
    return record, later, models, runs


def looks_record(state: LookState, design: LookDesign, rows: Sequence[str], best: str, seeds: Sequence[int]) -> dict:
    """What the report and MLflow read: the design, each row's decision (its n, the look, the interval at
    the look's level) and why an open row stayed open, and the trainings the looks saved."""
    trained = {row: len(state.accuracy[row]) for row in [best, *rows]}
    return {
        "design": design.describe(),
        "best_baseline": best,
        "looks": state.looks,
        "decisions": {
            row: {
                "verdict": state.decisions[row].verdict,
                "seeds": state.decisions[row].n,
                "look": state.decisions[row].look + 1,
                "gain_points": state.decisions[row].gain,
                "low": state.decisions[row].low,
                "high": state.decisions[row].high,
                "confidence": state.decisions[row].confidence,
                "open_because": state.reasons.get(row, ""),
            }
            for row in rows
        },
        "seeds_trained": trained,
        "seeds_listed": len(seeds),
        "seeds_saved": sum(len(seeds) - n for n in trained.values()),
        "seeds_if_fixed": len(seeds) * len(trained),
    }


def duration(new_seeds: Sequence[int], state: LookState, row: str) -> str:
    seconds = len(new_seeds) * state.seconds_per_seed[row]
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def budget_clock(budget_minutes: float | None, started: float | None) -> Callable[[], float]:
    """Wall seconds left of the budget, counted from `started` (time.time() when the first look was
    checked); inf without a budget."""
    if budget_minutes is None:
        return lambda: math.inf
    origin = started if started is not None else time.time()
    return lambda: budget_minutes * 60 - (time.time() - origin)


def evaluation_of(
    test, classes: list[str], device: str, dataset: str, keep: bool
) -> Callable[[str, dict[str, StoredModel]], tuple[dict, list[dict]]]:
    """How `later_looks` tests a strategy's new seeds; their child runs refer to their models in `dataset`
    (under the names `later_looks` stores them by) when `keep`."""

    def evaluate(name: str, models: dict[str, StoredModel]) -> tuple[dict, list[dict]]:
        renamed = {f"{name}-{key}": model for key, model in models.items()}
        return strategy_evaluation(name, renamed, set(renamed) if keep else set(), *test, classes, device, dataset)

    return evaluate
