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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from headstart.ml.config import TrainConfig, TrainingParams
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import digit_presence, overlay_digit_pairs, with_tasks
from headstart.ml.metrics import compare_multitask
from headstart.ml.multitask import evaluate_methods, outputs_per_task, stored_networks, tune_and_train_method
from headstart.ml.plots import plot_multitask_sweep
from headstart.ml.racing import setting_text
from headstart.ml.reports import interval, multitask_sweep_report, sweep_point_text

logger = logging.getLogger(__name__)

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


@dataclass
class SweepPoint:
    """One setting of a sweep (`values`, e.g. {"width_multiplier": 0.5}) and what its methods train on."""

    values: dict[str, Any]
    trunk: dict
    train: LabelledImages
    validation: LabelledImages
    test: LabelledImages
    source_state: dict[str, torch.Tensor] | None = None


def scaled_trunk(trunk: dict, multiplier: float) -> dict:
    """The trunk with every block's channels times `multiplier` (at least 1)."""
    if "widths" not in trunk:
        raise ValueError(
            "multitask_sweeps.capacity: width multipliers need a trunk with `widths` (multitask.trunk.architecture: "
            f"small_cnn, init: scratch), not {trunk.get('name')}"
        )
    return {**trunk, "widths": [max(1, round(width * multiplier)) for width in trunk["widths"]]}


def capacity_points(
    trunk: dict, multipliers: Sequence[float], splits: tuple[LabelledImages, LabelledImages, LabelledImages]
) -> list[SweepPoint]:
    """The multi-task comparison's data at each trunk width."""
    return [SweepPoint({"width_multiplier": float(m)}, scaled_trunk(trunk, m), *splits) for m in multipliers]


def presence_tasks(
    pools: tuple[LabelledImages, LabelledImages, LabelledImages],
    labels_per_task: int,
    tasks: int,
    validation_pairs: int,
    test_pairs: int,
    seed: int,
) -> tuple[LabelledImages, LabelledImages, LabelledImages]:
    """Digit pairs labelled `has_<digit>` for the first `tasks` digit classes: tasks that share every
    low-level feature. Each training image carries a label for every task, so labels per task =
    training images; validation and test keep their size at every point."""
    train_pool, validation_pool, test_pool = pools
    splits = [
        digit_presence(overlay_digit_pairs(pool, pairs, seed + offset))
        for offset, (pool, pairs) in enumerate(
            ((train_pool, labels_per_task), (validation_pool, validation_pairs), (test_pool, test_pairs))
        )
    ]
    available = list(splits[0].labels)
    if tasks > len(available):
        raise ValueError(
            f"multitask_sweeps.labels_and_tasks.tasks: {tasks} tasks asked, the digits give {len(available)}"
        )
    return tuple(with_tasks(split, available[:tasks]) for split in splits)


def run_sweep(
    sweep: str,
    points: Sequence[SweepPoint],
    methods: Mapping[str, Any],
    head: dict,
    seeds: list[int],
    config_for: Callable[[int, dict[str, float]], TrainConfig],
    lr_scales: list[float],
    racing_eta: int | None,
    checkpoint_dir: Path | None,
    device: str,
) -> tuple[pd.DataFrame, list[dict]]:
    """Every method at every point, tuned on that point's validation split (`tune_and_train_method`) and
    evaluated on its test split: rows of (point values, method, seed, task, test metrics, cost) and one
    MLflow child-run record per point × method × seed. `methods` are `MultitaskMethodParams`."""
    rows, runs = [], []
    for point in points:
        text = sweep_point_text(point.values)
        classes = outputs_per_task(point.train.classes)
        models = {}
        for name, method in methods.items():
            logger.info("Multi-task %s sweep, %s: %s, seeds %s", sweep, text, name, seeds)
            tuned = tune_and_train_method(
                method.sharing,
                method.weighting_for,
                method.penalty_for,
                point.trunk,
                classes,
                head,
                (point.train.images, point.train.labels),
                (point.validation.images, point.validation.labels),
                seeds,
                config_for,
                method.grid(lr_scales),
                racing_eta,
                point.source_state,
                checkpoint_dir,
                f"{sweep}-{text.replace('=', '').replace(', ', '-')}-{name}",
            )
            params = {
                "sweep": sweep,
                **point.values,
                "tuned": {part: setting_text(t["setting"]) for part, t in tuned.tuning.items()},
            }
            models.update(stored_networks(name, params, tuned.networks))
        results, point_runs = evaluate_methods(models, point.test, device)
        rows.append(results.assign(**point.values))
        for run in point_runs:
            run["run_name"] = f"{sweep} sweep {text}: {run['run_name'].removeprefix('multitask ')}"
            run["params"]["study"] = run["tags"]["study"] = f"multitask_{sweep}_sweep"
        runs += point_runs
    return pd.concat(rows, ignore_index=True), runs


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


def labels_points(
    pools: tuple[LabelledImages, LabelledImages, LabelledImages],
    labels_per_task: Sequence[int],
    task_counts: Sequence[int],
    trunks: Mapping[str, tuple[dict, dict[str, torch.Tensor] | None]],
    validation_pairs: int,
    test_pairs: int,
    seed: int,
) -> list[SweepPoint]:
    """Every labels × tasks × trunk point; `trunks` maps scratch / source to (trunk config, weights)."""
    points = []
    for labels in labels_per_task:
        for tasks in task_counts:
            splits = presence_tasks(pools, labels, tasks, validation_pairs, test_pairs, seed)
            for trunk_name, (trunk, state) in trunks.items():
                values = {"labels_per_task": labels, "tasks": tasks, "trunk": trunk_name}
                points.append(SweepPoint(values, trunk, *splits, source_state=state))
    return points


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
            interval(0.95, self.seeds),
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
    results, runs = run_sweep(
        sweep,
        points,
        setup.methods,
        setup.head,
        setup.seeds,
        setup.config_for,
        setup.lr_scales,
        setup.racing_eta,
        setup.checkpoint_dir,
        setup.device,
    )
    dimensions = list(points[0].values)
    table = sweep_table(results, dimensions, setup.baseline, setup.equal_weighting, reference=reference)
    markdown = multitask_sweep_report(title, table, dimensions, setup.baseline, [*data_lines, *setup.protocol()])
    lines = [d for d in dimensions if d != x]
    figure = plot_multitask_sweep(table, x, lines, setup.baseline, len(setup.seeds), title)
    return table, markdown, figure, runs


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
