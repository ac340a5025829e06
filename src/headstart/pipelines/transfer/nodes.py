"""Thin nodes over headstart.ml: estimate the cost, train one strategy over seeds, evaluate it, compare them all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost, progress, workers
from headstart.ml.calibration import BINS, COVERAGES, pooled_bins
from headstart.ml.comparison import budget_clock, evaluation_of, later_looks
from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import best_baseline, compare_to_baseline, selective_prediction_table, with_calibration
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_gains, plot_reliability, plot_risk_coverage
from headstart.ml.prediction import as_array, calibrate_models
from headstart.ml.reports import (
    calibration_text,
    labels_phrase,
    looks_verdict,
    transfer_protocol,
    transfer_report,
    with_decisions,
)
from headstart.ml.run_records import grid_images, strategy_evaluation
from headstart.ml.selection import choose_candidate
from headstart.ml.strategies import target_task
from headstart.ml.workers import resolve_workers
from headstart.params import RuntimeParams, TransferParams

logger = logging.getLogger(__name__)
LATER_MODELS = "transfer_later_look_models"  # the catalog entry of the later looks' models
PER_SEED_LISTS = ("confusion_matrix", "selective_accuracy", "reliability")  # in the evaluations, not the table
BUDGET = cost.Knobs(seeds="transfer.looks, the first look's seeds:", fewest_seeds=2)


def estimate_cost(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
    source_candidates: dict[str, StoredModel] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The first look's cost before any training (headstart.ml.cost): per strategy, the trainings of its
    grid × the first look's seeds and their wall seconds on `runtime.workers` workers, from steps timed
    here; what cannot run on this task, named; printed, and its summary for MLflow. A strategy naming an
    advise candidate as its `source` is checked here, before any training: the candidate exists."""
    for name, params in transfer.compared.items():
        if params.source is not None:
            strategy_source(source_candidates or {}, params.source, name)
    task = target_task(source_model["source"], target_train, target_validation, source_train, target_unlabelled)
    left_out = {
        name: reason
        for name in transfer.compared
        if (reason := transfer.trainer(name, source_model["source"], task, runtime).not_applicable())
    }
    plans = transfer.cost_plans(runtime, len(target_train), len(target_validation), len(target_test))
    plans = [plan for plan in plans if plan.name not in left_out]
    processes = resolve_workers(runtime.workers, runtime.device)
    estimate = cost.estimate_cost(task, plans, runtime.time_budget_minutes, BUDGET, processes=processes)
    title = f"Cost of the comparison's first look ({len(plans)} strategies, {len(transfer.first_look_seeds)} seeds)"
    print(estimate.text(title), flush=True)  # a table for the terminal, not a log record the handler wraps
    logger.info("%s: %d trainings, about %.1f min", title, estimate.trainings, estimate.seconds / 60)
    for name, reason in left_out.items():
        logger.info("Not applicable, left out: %s (%s)", name, reason)
    return estimate.table, {**estimate.summary(title), "not_applicable": left_out, "workers": processes}


def strategy_source(models: dict[str, StoredModel], candidate: str | None, strategy: str) -> StoredModel:
    """The source model a strategy starts from: `models` is source_model, or source_candidates when it
    names a `candidate`."""
    if candidate is None:
        return models["source"]
    if candidate not in models:
        raise ValueError(
            f"transfer.strategies.{strategy}.source: no advise candidate '{candidate}' among the source candidates "
            f"({', '.join(models) or 'none yet: run `kedro run --pipelines=advise` first'}); "
            "name one of advise.candidates"
        )
    return models[candidate]


def check_cost_limit(transfer_cost: dict, transfer: TransferParams, runtime: RuntimeParams) -> dict:
    """Stops the run before any training when the first look's estimate exceeds runtime.time_budget_minutes,
    naming what to cut; every training node waits for its output, which starts the budget's clock."""
    cost.check_limit(transfer_cost, runtime.time_budget_minutes, BUDGET)
    progress.planned(transfer_cost["estimated_trainings"], 1, len(transfer.planned_looks))
    return {
        "checked": True,
        "estimated_minutes": transfer_cost["estimated_minutes"],
        "started": time.time(),
        "not_applicable": transfer_cost.get("not_applicable", {}),
    }


def train_target_models(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
    cost_checked: dict | None = None,
    *,
    strategy: str,
) -> dict[str, StoredModel]:
    """The strategy's first look: one target model per seed, tuned on validation, trained in the run's
    workers; none when it cannot run on this task. `cost_checked` only orders the check before it."""
    if strategy not in transfer.strategies:
        raise ValueError(f"transfer.strategies has no '{strategy}'; define its parameters in parameters_transfer.yml")
    source = strategy_source(source_model, transfer.strategies[strategy].source, strategy)
    task = target_task(source, target_train, target_validation, source_train, target_unlabelled)
    trainer = transfer.trainer(strategy, source, task, runtime)
    if reason := trainer.not_applicable():
        logger.info("Strategy %s is not applicable here, left out: %s", strategy, reason)
        return {}
    tuned = trainer.train(transfer.first_look_seeds, workers.shared(resolve_workers(runtime.workers, runtime.device)))
    logger.info(
        "Strategy %s: %s has the best validation accuracy (%.4f)",
        strategy,
        tuned.setting_text(),
        tuned.validation_accuracy,
    )
    return trainer.models(tuned, target_train.primary_classes, int(target_train.images.shape[-1]))


def models_to_keep(models: dict[str, StoredModel], keep: str) -> dict[str, StoredModel]:
    """The models the catalog stores (`transfer.keep_models`): every seed's, or the best seed's on validation."""
    if keep == "every_seed" or not models:
        return models
    name = max(models, key=lambda n: models[n].info["validation_accuracy"])
    return {name: models[name]}


def calibration_of(
    target_train: LabelledImages, target_validation: LabelledImages, device: str
) -> Callable[[dict[str, StoredModel]], dict[str, StoredModel]]:
    """How a strategy's new models get their temperature and out-of-distribution thresholds, fitted on
    validation (the k-NN score's features from the training images) before they are tested and stored."""
    validation_images, validation_labels = target_validation.primary_pairs()
    return lambda models: calibrate_models(models, target_train.images, validation_images, validation_labels, device)


def evaluate_target_models(
    trained_models: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    *,
    strategy: str,
) -> tuple[dict[str, StoredModel], dict, list[dict]]:
    """The models to store (calibrated on validation, with their out-of-distribution thresholds), test
    metrics per seed, and one MLflow child run per seed (params, curves, confusion matrix, report, and a
    reference to its stored model: the catalog file is the one copy)."""
    if not trained_models:  # not applicable to this task: named in the estimate and the report
        return {}, {"strategy": strategy, "seeds": []}, []
    trained_models = calibration_of(target_train, target_validation, runtime.device)(trained_models)
    kept = models_to_keep(trained_models, transfer.keep_models)
    evaluation, runs = strategy_evaluation(
        strategy, trained_models, set(kept), *target_test.primary_pairs(), target_test.primary_classes, runtime.device
    )
    return kept, evaluation, runs


def gather_first_look(*evaluations: dict) -> dict[str, dict]:
    """Every strategy's first-look evaluation by name, for the later looks and the comparison."""
    return {evaluation["strategy"]: evaluation for evaluation in evaluations}


def run_later_looks(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    first_look: dict[str, dict],
    cost_checked: dict,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
    source_candidates: dict[str, StoredModel] | None = None,
) -> tuple[dict[str, StoredModel], dict, list[dict]]:
    """The planned looks after the first (headstart.ml.comparison.later_looks): each row decided at each
    look, the open ones trained on the next look's seeds while the budget lasts. Returns the later seeds'
    models (stored), the looks' record with those seeds' evaluations, and their child runs."""
    compared = {name: e for name, e in first_look.items() if e["seeds"]}
    sources = {**(source_candidates or {}), **source_model}
    trainers = {
        name: transfer.trainer(
            name,
            source := strategy_source(sources, transfer.strategies[name].source, name),
            target_task(source, target_train, target_validation, source_train, target_unlabelled),
            runtime,
        )
        for name in compared
    }
    first_results = pd.DataFrame([{"strategy": n, **s} for n, e in compared.items() for s in e["seeds"]])
    best = best_baseline(first_results, transfer.baselines)
    design = transfer.look_design(len(compared) - 1)
    keep = transfer.keep_models == "every_seed"
    test = evaluation_of(target_test.primary_pairs(), target_test.primary_classes, runtime.device, LATER_MODELS, keep)
    calibrate = calibration_of(target_train, target_validation, runtime.device)
    record, later, models, runs = later_looks(
        trainers,
        compared,
        design,
        transfer.seeds,
        best,
        workers.shared(resolve_workers(runtime.workers, runtime.device)),
        budget_clock(runtime.time_budget_minutes, cost_checked.get("started")),
        lambda name, trained: test(name, calibrate(trained)),  # calibrated in place: the models stored
        target_train.primary_classes,
        int(target_train.images.shape[-1]),
    )
    record = {**record, "later_seeds": later, "not_applicable": cost_checked.get("not_applicable", {})}
    return (models if keep else {}), record, runs


def compare_strategies(
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    first_look: dict[str, dict],
    looks: dict,
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, opening with its verdict per row, its protocol stated) and
    the chart of gains, over every seed of every look."""
    evaluations = [e for e in first_look.values() if e["seeds"]]
    results = pd.DataFrame(
        [
            {
                "strategy": e["strategy"],
                **{k: v for k, v in seed.items() if k not in PER_SEED_LISTS},
                "grid_images_seen": grid_images(e.get("tuning") or {}),
            }
            for e in evaluations
            for seed in [*e["seeds"], *looks["later_seeds"].get(e["strategy"], [])]
        ]
    )
    best = looks["best_baseline"]
    comparison = with_decisions(
        compare_to_baseline(results, transfer.baseline, transfer.confidence, transfer.reference_baselines, best),
        looks["decisions"],
    )
    comparison = with_calibration(comparison, results, transfer.confidence)
    level = round(transfer.confidence * 100)
    classical = {name: folds for name, folds in transfer.classical_folds.items() if name in set(results["strategy"])}
    classes = len(target_train.primary_classes)
    labels = labels_phrase(len(target_train) / classes, len(target_validation) / classes, list(classical))
    protocol = transfer_protocol(
        {"train": target_train, "validation": target_validation, "test": target_test},
        {name: transfer.strategies[name].tuning_grid(transfer.lr_scales) for name in results["strategy"].unique()},
        transfer.seeds,
        transfer.confidence,
        transfer.baseline,
        transfer.reference_baselines,
        best,
        eta=transfer.racing_eta,
        rungs={e["strategy"]: (e.get("tuning") or {}).get("rungs") or [] for e in evaluations},
        classical_folds=classical,
        looks=looks,
    )
    protocol.append(f"- {calibration_text(BINS, COVERAGES)}")
    markdown = transfer_report(comparison, looks_verdict(comparison, looks, labels, transfer.baseline), protocol)
    return comparison, markdown, plot_gains(comparison, best, level, len(transfer.seeds))


def summarise_calibration(
    first_look: dict[str, dict], looks: dict, transfer: TransferParams
) -> tuple[pd.DataFrame, Figure, Figure]:
    """Selective prediction and calibration over every seed of every look: accuracy against coverage per
    strategy (a table, with intervals over seeds, and its plot) and a reliability diagram per strategy."""
    seeds = {
        name: [*e["seeds"], *looks["later_seeds"].get(name, [])]
        for name, e in first_look.items()
        if e["seeds"] and "reliability" in e["seeds"][0]
    }
    selective = [(name, seed["selective_accuracy"]) for name, rows in seeds.items() for seed in rows]
    table = selective_prediction_table(selective, COVERAGES, transfer.confidence)
    pooled = {
        name: {kind: pooled_bins([seed["reliability"][kind] for seed in rows]) for kind in ("raw", "calibrated")}
        for name, rows in seeds.items()
    }
    return table, plot_reliability(pooled, BINS), plot_risk_coverage(table, len(transfer.seeds))


def choose_best_model(target_test: LabelledImages, *strategy_models: dict[str, StoredModel]) -> dict:
    """This run's best model among the first look's, chosen on validation (as promotion chooses), to log
    as an MLflow model."""
    strategy_models = tuple(models for models in strategy_models if models)  # not applicable: none
    strategy, model = choose_candidate(strategy_models)
    (name,) = [n for models in strategy_models for n, m in models.items() if m is model]
    logger.info(
        "Best model of this run: %s seed %s (validation accuracy %.4f)",
        strategy,
        model.info["seed"],
        model.info["validation_accuracy"],
    )
    # The MLflow hook turns the catalog entry and name into the path of the stored weights.
    return {
        "model": model,
        "example": as_array(target_test.images[0]),
        "stored_in": (f"{strategy}.target_models", name),
    }
