"""Thin nodes over headstart.ml.studies: one training per strategy × budget × seed, on one split."""

from __future__ import annotations

import logging
from functools import partial

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_label_budget, labels_used_per_class
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_learning_curve
from headstart.ml.reports import learning_curve_report, learning_curve_verdict
from headstart.ml.run_records import learning_curve_run
from headstart.ml.strategies import TargetTask
from headstart.ml.studies import (
    curve_table,
    labels_saved,
    labels_saved_interval,
    parallel_map,
    tune_and_test,
)
from headstart.ml.workers import for_runtime
from headstart.params import IngestParams, LearningCurveParams, RuntimeParams, TransferParams
from headstart.pipelines.shared import configure_strategy

logger = logging.getLogger(__name__)
KNOBS = cost.Knobs(
    seeds="learning_curve.seeds",
    strategies="learning_curve.strategies",
    epochs="training.epochs (and probe.epochs) of each strategy in transfer.strategies",
)


def curve_strategies(learning_curve: LearningCurveParams, transfer: TransferParams) -> list[str]:
    """The baselines, then the study's strategies, each known to transfer.strategies."""
    strategies = [*transfer.baselines, *(s for s in learning_curve.strategies if s not in transfer.baselines)]
    unknown = [s for s in strategies if s not in transfer.strategies]
    if unknown:
        known = ", ".join(transfer.strategies)
        raise ValueError(f"learning_curve.strategies: {', '.join(unknown)} not in transfer.strategies ({known})")
    sourced = [s for s in strategies if transfer.strategies[s].source]
    if sourced:
        raise ValueError(
            f"learning_curve.strategies: {', '.join(sourced)} start from an advise candidate (`source`); the "
            "learning curve trains from the pretrained source model only"
        )
    return strategies


def estimate_learning_curve_cost(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    learning_curve: LearningCurveParams,
    transfer: TransferParams,
    ingest: IngestParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, dict]:
    """The curve's cost before any training (headstart.ml.cost): per strategy and budget, its grid × seeds
    on that budget's labels, from steps timed here; printed, and its summary for MLflow."""
    draws = {
        budget: draw_label_budget(
            target_train_pool,
            target_validation_pool,
            budget,
            ingest.split.validation_labels_per_class,
            learning_curve.seeds[0],
        )
        for budget in learning_curve.labels_per_class
    }
    plans = [
        cost.Plan(
            f"{strategy} k={budget}",
            tuple(
                transfer.strategies[strategy].to_config(learning_curve.seeds[0], runtime, **setting)
                for setting in transfer.strategies[strategy].tuning_grid(transfer.lr_scales)
            ),
            len(learning_curve.seeds),
            len(train),
            len(validation),
            len(target_test),
            required=strategy in transfer.baselines,
            group=strategy,
            racing_eta=transfer.racing_eta,
        )
        for strategy in curve_strategies(learning_curve, transfer)
        for budget, (train, validation) in draws.items()
    ]
    source = source_model["source"]
    task = TargetTask(
        source.config,
        source.state,
        len(target_train_pool.primary_classes),
        target_train_pool.primary_pairs(),
        target_validation_pool.primary_pairs(),
    )
    points = len(draws) * len(learning_curve.seeds)
    processes = min(for_runtime(runtime).count, points)
    estimate = cost.estimate_cost(task, plans, runtime.time_budget_minutes, KNOBS, processes)
    title = f"Cost of the learning curve ({points} points)"
    logger.info("%s", estimate.text(title))
    return estimate.table, estimate.summary(title)


def check_learning_curve_cost(learning_curve_cost: dict, runtime: RuntimeParams) -> dict:
    """Stops the run before any training when the estimate exceeds runtime.time_budget_minutes, naming what to cut."""
    cost.check_limit(learning_curve_cost, runtime.time_budget_minutes, KNOBS)
    return {"checked": True, "estimated_minutes": learning_curve_cost["estimated_minutes"]}


def run_learning_curve(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    learning_curve: LearningCurveParams,
    transfer: TransferParams,
    ingest: IngestParams,
    runtime: RuntimeParams,
    cost_checked: dict | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (strategy, labels_per_class, k, labels_used, seed, validation and test metrics), and one
    MLflow child run per row (after the cost check: `cost_checked` only orders it first).

    Seed s draws the k training and validation labels per class with seed s (nested across budgets),
    tunes each strategy on them and seeds the training, so the intervals include which labels one
    happened to get. Every budget is drawn before any training, so one that cannot be drawn stops at once."""
    strategies = curve_strategies(learning_curve, transfer)
    draws = {
        (budget, seed): draw_label_budget(
            target_train_pool, target_validation_pool, budget, ingest.split.validation_labels_per_class, seed
        )
        for budget in learning_curve.labels_per_class
        for seed in learning_curve.seeds
    }
    source = source_model["source"]
    num_classes = len(target_train_pool.primary_classes)
    test = target_test.primary_pairs()
    measure = partial(measure_point, source, num_classes, test, strategies, transfer, runtime)
    points = [(budget, seed, train, validation) for (budget, seed), (train, validation) in draws.items()]
    workers = for_runtime(runtime)
    logger.info("Learning curve: %d points (budget × seed) in %d worker(s)", len(points), workers.count)
    # the largest budgets first, so no process is left with a big one at the end; then back in order
    measured = parallel_map(measure, points[::-1], workers)[::-1]
    rows = [row for point_rows, _ in measured for row in point_rows]
    runs = [run for _, point_runs in measured for run in point_runs]
    return pd.DataFrame(rows), runs


def measure_point(
    source: StoredModel,
    num_classes: int,
    test: tuple,
    strategies: list[str],
    transfer: TransferParams,
    runtime: RuntimeParams,
    point: tuple,
) -> tuple[list[dict], list[dict]]:
    """One point of the curve (a budget and seed): every strategy tuned on its validation labels and
    tested; its rows and MLflow child runs. Points are independent, so they may run in parallel."""
    budget, seed, train, validation = point
    described = {
        "labels_per_class": str(budget),
        "k": len(train) / num_classes,
        "labels_used": labels_used_per_class(train, validation),
        "seed": seed,
    }
    rows, runs = [], []
    for strategy in strategies:
        params = transfer.strategies[strategy]
        logger.info("Learning curve: %s, %s labels per class, seed %d", strategy, budget, seed)
        kept, metrics = tune_and_test(
            TargetTask(source.config, source.state, num_classes, train.primary_pairs(), validation.primary_pairs()),
            test,
            params.tuning_grid(transfer.lr_scales),
            seed,
            partial(configure_strategy, params, runtime),
            transfer.racing_eta,
        )
        rows.append({"strategy": strategy, **described, "tuned": kept.setting_text(), **metrics})
        runs.append(learning_curve_run(strategy, budget, described, kept, metrics, params.model_dump(mode="json")))
    return rows, runs


def summarise_learning_curve(
    curve: pd.DataFrame,
    transfer: TransferParams,
    learning_curve: LearningCurveParams,
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
) -> tuple[pd.DataFrame, str, Figure]:
    """The labels-saved table (CSV), the curve and labels-saved tables opening with their verdict per
    budget and stating their protocol (Markdown), and the plot."""
    saved = labels_saved(curve, transfer.baselines).merge(
        labels_saved_interval(curve, transfer.baselines, transfer.confidence), on=["strategy", "labels_per_class"]
    )
    grids = {name: transfer.strategies[name].tuning_grid(transfer.lr_scales) for name in curve["strategy"].unique()}
    classical = {name: folds for name, folds in transfer.classical_folds.items() if name in grids}
    verdicts = learning_curve_verdict(
        curve, transfer.baseline, transfer.reference_baselines, transfer.confidence, list(classical)
    )
    markdown = learning_curve_report(
        verdicts,
        learning_curve.labels_per_class,
        {"train pool": len(target_train_pool), "validation": len(target_validation_pool), "test": len(target_test)},
        learning_curve.seeds,
        transfer.confidence,
        grids,
        classical,
        transfer.baselines,
        transfer.racing_eta,
        curve_table(curve, transfer.baselines, transfer.confidence),
        saved,
    )
    return saved, markdown, plot_learning_curve(curve, transfer.baselines, transfer.confidence)
