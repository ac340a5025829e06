"""The design notes' two claims about multi-task learning, put to the test.

- Capacity (Caruana 1997; Ng's course): with a shared network big enough, multi-task learning is about
  as good as separate networks; it hurts mainly when the shared network is too small.
- Labels per task × number of tasks: sharing pays when each task has few labels but together they have
  many; with a source model's trunk (transfer plus multi-task) the labels matter less.

Each point of a sweep is a small multi-task comparison: the listed methods on the same data, seeds,
budget and grid as each other, Δm against the single-task networks of the same point
(`headstart.ml.metrics.compare_multitask`, paired by seed, a t-interval over seeds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import workers
from headstart.ml.comparison import budget_clock
from headstart.ml.config import TrainConfig, TrainingParams
from headstart.ml.cost import Estimate, Knobs, check_limit
from headstart.ml.data.images import LabelledImages
from headstart.ml.looks import LookDesign
from headstart.ml.metrics import compare_multitask
from headstart.ml.multitask.cost import MethodPlan, estimate_methods
from headstart.ml.multitask.evaluation import evaluate_methods, stored_networks
from headstart.ml.multitask.looks import run_looks
from headstart.ml.multitask.sweep_points import SweepPoint, capacity_points, scaled_trunk
from headstart.ml.multitask.training import MethodRecipe
from headstart.ml.plots import plot_multitask_sweep
from headstart.ml.racing import setting_text
from headstart.ml.reports import interval, multitask_sweep_report, sweep_point_text

logger = logging.getLogger(__name__)

SWEEP_KNOBS = Knobs(
    seeds="the first look's seeds (multitask_sweeps.seeds, multitask_sweeps.looks)",
    grid="the tuning grids (multitask_sweeps.lr_scales; a method's tune)",
    strategies="multitask_sweeps.methods",
    epochs="multitask_sweeps.training.epochs",
    fewest_seeds=2,
)

SUMMARY_COLUMNS = [
    "method",
    "seeds",
    "mean_accuracy",
    "delta_m",
    "delta_m_ci_low",
    "delta_m_ci_high",
    "delta_p",
    "delta_p_ci_low",
    "delta_p_ci_high",
    "parameters",
    "train_seconds",
    "step_cost",
    "tuned",
]


def point_recipes(sweep: str, point: SweepPoint, setup: SweepRun) -> dict[str, MethodRecipe]:
    """Every method's training at one point but its seeds."""
    text = sweep_point_text(point.values)
    return {
        name: MethodRecipe.of(
            method,
            f"{sweep}-{text.replace('=', '').replace(', ', '-')}-{name}",
            point.trunk,
            setup.head,
            point.train,
            point.validation,
            setup.config_for,
            setup.lr_scales,
            setup.racing_eta,
            point.source_state,
            setup.checkpoint_dir,
        )
        for name, method in setup.methods.items()
    }


def sweep_estimate(sweep: str, points: Sequence[SweepPoint], setup: SweepRun) -> Estimate:
    """The sweep's first looks, every point × method, priced before any training."""
    seeds = setup.design.looks[0]
    plans = [
        MethodPlan(f"{sweep_point_text(point.values)}: {name}", recipe, seeds, name, required=name == setup.baseline)
        for point in points
        for name, recipe in point_recipes(sweep, point, setup).items()
    ]
    return estimate_methods(plans, SWEEP_KNOBS, setup.budget_minutes, setup.processes)


def run_point(
    sweep: str, point: SweepPoint, setup: SweepRun, pool: workers.Workers, seconds_left: Callable[[], float]
) -> tuple[pd.DataFrame, list[dict], dict]:
    """One point's methods in planned looks: its test rows, child-run records and looks' record."""
    text = sweep_point_text(point.values)
    logger.info("Multi-task %s sweep, %s: %s", sweep, text, ", ".join(setup.methods))

    def stored(name: str, networks: list, tuning: dict[str, dict]) -> dict:
        tuned = {part: setting_text(t["setting"]) for part, t in tuning.items()}
        return stored_networks(name, {"sweep": sweep, **point.values, "tuned": tuned}, networks)

    def evaluate(name, networks, tuning):
        return evaluate_methods(stored(name, networks, tuning), point.test, setup.device)[0]

    recipes = point_recipes(sweep, point, setup)
    looked = run_looks(recipes, setup.baseline, setup.seeds, setup.design, pool, seconds_left, evaluate)
    models = {}
    for name, networks in looked.networks.items():
        models.update(stored(name, networks, looked.tuning[name]))
    results, runs = evaluate_methods(models, point.test, setup.device)
    for run in runs:
        run["run_name"] = f"{sweep} sweep {text}: {run['run_name'].removeprefix('multitask ')}"
        run["params"]["study"] = run["tags"]["study"] = f"multitask_{sweep}_sweep"
    return results.assign(**point.values), runs, looked.record


def run_sweep(
    sweep: str, points: Sequence[SweepPoint], setup: SweepRun, first_looks: Sequence[float] | None = None
) -> tuple[pd.DataFrame, list[dict], dict]:
    """Every method at every point in planned looks (headstart.ml.multitask.looks: tuned on that point's
    validation split at its first look, only the methods still open against single-task get more seeds)
    in the run's workers, evaluated on its test split: rows of (point values, method, seed, task, test
    metrics, cost), one MLflow child-run record per point × method × seed, and each point's looks. The
    budget's clock starts here and runs over the whole sweep; a point's later looks leave the estimated
    wall seconds of the later points' first looks (`first_looks`, one per point) untouched."""
    rows, runs, looks = [], [], {}
    pool = workers.pool(setup.processes, setup.cluster, setup.checkpoint_dir)
    clock = budget_clock(setup.budget_minutes, time.time())
    first_looks = list(first_looks or [0.0] * len(points))
    for index, point in enumerate(points):
        reserved = sum(first_looks[index + 1 :])
        results, point_runs, looks[sweep_point_text(point.values)] = run_point(
            sweep, point, setup, pool, lambda reserved=reserved: clock() - reserved
        )
        rows.append(results)
        runs += point_runs
    pool.settle()
    return pd.concat(rows, ignore_index=True), runs, looks


def sweep_table(
    results: pd.DataFrame,
    dimensions: list[str],
    baseline: str,
    cost_reference: str | None,
    confidence: float = 0.95,
    reference: tuple[str, Any] | None = None,
) -> pd.DataFrame:
    """Per point and method: the mean test accuracy over tasks and seeds, Δm and Δp against `baseline`
    at the same point, with intervals, and the cost. `reference` = (dimension, value), e.g. ("trunk",
    "scratch"), adds `delta_m_vs_<value>`: Δm against the baseline of the point that differs only in
    that dimension, so a source trunk's gain and sharing's are read apart."""
    tables = []
    for values, group in results.groupby(dimensions, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        table = compare_multitask(group, baseline, confidence, cost_reference)
        accuracies = [c for c in table.columns if c.endswith("_accuracy")]
        table["mean_accuracy"] = table[accuracies].mean(axis=1)
        table = table.reindex(columns=SUMMARY_COLUMNS)
        if reference is not None:
            dimension, value = reference
            point = dict(zip(dimensions, values))
            matches = results[results[dimension] == value]
            for other in (d for d in dimensions if d != dimension):
                matches = matches[matches[other] == point[other]]
            reference_runs = matches[matches["method"] == baseline].assign(method=f"{baseline} ({value})")
            against = compare_multitask(pd.concat([reference_runs, group]), f"{baseline} ({value})", confidence)
            table[f"delta_m_vs_{value}"] = table["method"].map(against.set_index("method")["delta_m"])
        tables.append(table.assign(**dict(zip(dimensions, values))))
    table = pd.concat(tables, ignore_index=True)
    return table[[*dimensions, *(c for c in table.columns if c not in dimensions)]]


def single_task_baseline(methods: Mapping[str, Any]) -> str:
    """The single_task method among `methods` (MultitaskMethodParams by name): every Δm's reference."""
    return next(name for name, method in methods.items() if method.sharing == "single_task")


def equal_weighting_of(methods: Mapping[str, Any]) -> str | None:
    """The first hard-sharing method with fixed weights: what each method's cost per step is relative to."""
    fixed = (n for n, m in methods.items() if m.sharing == "hard" and m.weighting.kind == "fixed")
    return next(fixed, None)


@dataclass
class SweepRun:
    """What every point of a sweep shares: its methods (`MultitaskMethodParams` by name; one is
    single_task, the baseline), heads, seeds, budget and grid, and where it checkpoints and runs."""

    methods: Mapping[str, Any]
    head: dict
    seeds: list[int]
    budget: TrainingParams
    config_for: Callable[[int, dict[str, float]], TrainConfig]
    lr_scales: list[float]
    racing_eta: int | None
    checkpoint_dir: Path | None
    device: str
    design: LookDesign = LookDesign((3,))
    processes: int = 1  # the run's workers
    cluster: Any = None  # runtime.cluster: a Dask cluster's workers in place of `processes` local ones
    budget_minutes: float | None = None  # runtime.time_budget_minutes: the whole sweep's

    @property
    def baseline(self) -> str:
        return single_task_baseline(self.methods)

    @property
    def equal_weighting(self) -> str | None:
        return equal_weighting_of(self.methods)

    def protocol(self) -> list[str]:
        budget = self.budget
        steps = (
            f", at least {budget.min_batches_per_epoch} batches an epoch (the same steps at every size)"
            if budget.min_batches_per_epoch
            else ""
        )
        return [
            f"Methods: {', '.join(f'`{name}`' for name in self.methods)}, each defined once in multitask.methods.",
            f"At every point: {self.design.describe()} {interval(0.95, self.seeds)} (`seeds`: a method's own n).",
            f"One budget at every point and for every method: at most {budget.epochs} epochs of batch "
            f"{budget.batch_size}{steps}, early stopping after {budget.patience} epochs without a better "
            f"validation score (not before epoch {budget.min_epochs}). Every method is tuned on each point's "
            f"validation split alike: the rates times {', '.join(f'{x:g}' for x in self.lr_scales)} and the "
            "method's own `tune` grid, "
            + (
                f"raced by successive halving (η = {self.racing_eta})."
                if self.racing_eta
                else "every candidate to the end."
            ),
        ]


def sweep_study(
    sweep: str,
    title: str,
    points: Sequence[SweepPoint],
    setup: SweepRun,
    data_lines: list[str],
    x: str,
    reference: tuple[str, Any] | None = None,
) -> tuple[pd.DataFrame, str, Figure, list[dict]]:
    """A sweep run, tabulated (`sweep_table`), reported in words and drawn: table, Markdown, figure and
    the MLflow child-run records."""
    found = sweep_estimate(sweep, points, setup)
    heading = f"Cost of the {sweep} sweep's first looks ({len(points)} points × {len(setup.methods)} methods)"
    print(found.text(heading), flush=True)
    check_limit(found.summary(heading), setup.budget_minutes, SWEEP_KNOBS)
    per_point = found.table["expected_seconds"].to_numpy().reshape(len(points), -1).sum(axis=1) / setup.processes
    results, runs, looks = run_sweep(sweep, points, setup, list(per_point))
    dimensions = list(points[0].values)
    table = with_verdicts(
        sweep_table(results, dimensions, setup.baseline, setup.equal_weighting, reference=reference), dimensions, looks
    )
    markdown = multitask_sweep_report(title, table, dimensions, setup.baseline, [*data_lines, *setup.protocol()])
    lines = [d for d in dimensions if d != x]
    figure = plot_multitask_sweep(table, x, lines, setup.baseline, len(setup.seeds), title)
    return table, markdown, figure, runs


def with_verdicts(table: pd.DataFrame, dimensions: list[str], looks: Mapping[str, dict]) -> pd.DataFrame:
    """The sweep's table with each point's looks' verdict per method (and its n and look)."""
    decisions = [
        looks[sweep_point_text(dict(zip(dimensions, values)))]["decisions"].get(method)
        for *values, method in table[[*dimensions, "method"]].itertuples(index=False)
    ]
    table = table.copy()
    table.insert(len(dimensions) + 1, "verdict", [d["verdict"] if d else "baseline" for d in decisions])
    table.insert(len(dimensions) + 2, "decided_at_look", [d["look"] if d else None for d in decisions])
    return table


def capacity_sweep(
    trunk: dict,
    multipliers: Sequence[float],
    splits: tuple[LabelledImages, LabelledImages, LabelledImages],
    setup: SweepRun,
) -> tuple[pd.DataFrame, str, Figure, list[dict]]:
    """Δm of each method against single-task networks of the same width, at each width multiplier."""
    points = capacity_points(trunk, multipliers, splits)
    train, validation, test = splits
    data = [
        f"Data: the multi-task comparison's own, train {len(train)}, validation {len(validation)}, test "
        f"{len(test)} images, tasks {', '.join(train.labels)}.",
        f"Trunk: {trunk.get('name')} from scratch with widths {trunk['widths']} times "
        + ", ".join(f"{m:g} ({scaled_trunk(trunk, m)['widths']})" for m in multipliers)
        + "; each task's head unchanged.",
    ]
    return sweep_study(
        "capacity",
        "Multi-task against single-task networks, by the trunk's width",
        points,
        setup,
        data,
        "width_multiplier",
    )


def labels_tasks_sweep(points: Sequence[SweepPoint], setup: SweepRun) -> tuple[pd.DataFrame, str, Figure, list[dict]]:
    """Δm against single-task networks at each labels-per-task × number-of-tasks × trunk point
    (`labels_points`); with both trunks, `delta_m_vs_scratch` also sets every method against the
    scratch trunk's single-task networks."""
    labels = sorted({point.values["labels_per_task"] for point in points})
    trunks = {point.values["trunk"]: point for point in points}
    data = [
        "Data: digit pairs (MultiMNIST-style, drawn within the target's train pool, validation split and test "
        "split) labelled `has_<digit>` for the first n digit classes, one yes/no task each (a sigmoid output, "
        f"binary cross-entropy): {', '.join(map(str, labels))} training images (every image labels every "
        f"task, so as many labels per task), {len(points[0].validation)} validation and {len(points[0].test)} "
        "test images at every point.",
        "Trunks: "
        + "; ".join(
            f"{name}: {point.trunk.get('name')}"
            + (" with the source model's body copied" if point.source_state is not None else " from random init")
            for name, point in trunks.items()
        )
        + ". `delta_m_vs_scratch`: Δm against the scratch trunk's single-task networks at the same labels and tasks "
        "(transfer's gain and sharing's together).",
    ]
    reference = ("trunk", "scratch") if "scratch" in trunks and len(trunks) > 1 else None
    return sweep_study(
        "labels_tasks",
        "Multi-task against single-task networks, by labels per task and number of tasks",
        points,
        setup,
        data,
        "labels_per_task",
        reference,
    )
