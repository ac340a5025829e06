"""The transfer pipeline's steps, as its nodes call them: the first look's estimate, one strategy's first
look, the later looks, the comparison table and the calibration summary. The nodes pass their data sets
and parameters in and return what these return (headstart.pipelines.transfer.nodes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost, workers
from headstart.ml.calibration import BINS, COVERAGES, pooled_bins
from headstart.ml.comparison import StrategyTrainer, budget_clock, evaluation_of, later_looks
from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import best_baseline, compare_to_baseline, selective_prediction_table, with_calibration
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_gains, plot_reliability, plot_risk_coverage
from headstart.ml.prediction import calibrate_models
from headstart.ml.reports import (
    calibration_text,
    labels_phrase,
    looks_verdict,
    transfer_protocol,
    transfer_report,
    with_decisions,
)
from headstart.ml.run_records import grid_images
from headstart.ml.strategies import TargetTask, target_task

if TYPE_CHECKING:
    from headstart.params import RuntimeParams, TransferParams

logger = logging.getLogger(__name__)
LATER_MODELS = "transfer_later_look_models"  # the catalog entry of the later looks' models
PER_SEED_LISTS = ("confusion_matrix", "selective_accuracy", "reliability")  # in the evaluations, not the table
BUDGET = cost.Knobs(seeds="transfer.looks, the first look's seeds:", fewest_seeds=2)


@dataclass(frozen=True)
class TransferData:
    """The data sets a comparison reads: the target's splits, and the images only some strategies use."""

    train: LabelledImages
    validation: LabelledImages
    test: LabelledImages | None = None
    source_train: LabelledImages | None = None
    unlabelled: LabelledImages | None = None

    def task(self, source: StoredModel) -> TargetTask:
        return target_task(source, self.train, self.validation, self.source_train, self.unlabelled)

    def calibrate(self, device: str):
        """How new models get their temperature and out-of-distribution thresholds, fitted on validation
        (the k-NN score's features from the training images) before they are tested and stored."""
        images, labels = self.validation.primary_pairs()
        return lambda models: calibrate_models(models, self.train.images, images, labels, device)


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


def trainer_of(name: str, sources: dict[str, StoredModel], data: TransferData, transfer, runtime) -> StrategyTrainer:
    """Strategy `name` ready to train, from its own source model (an advise candidate's, if it names one)."""
    if name not in transfer.strategies:
        raise ValueError(f"transfer.strategies has no '{name}'; define its parameters in parameters_transfer.yml")
    source = strategy_source(sources, transfer.strategies[name].source, name)
    return transfer.trainer(name, source, data.task(source), runtime)


def first_look_estimate(
    source: StoredModel,
    candidates: dict[str, StoredModel],
    data: TransferData,
    transfer: TransferParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, dict]:
    """The first look's cost before any training (headstart.ml.cost): per strategy, the trainings of its
    grid × the first look's seeds and their wall seconds on the run's workers, from steps timed
    here; what cannot run on this task, named; printed, and its summary for MLflow. A strategy naming an
    advise candidate as its `source` is checked here, before any training: the candidate exists."""
    for name, params in transfer.compared.items():
        if params.source is not None:
            strategy_source(candidates, params.source, name)
    task = data.task(source)
    trainers = {name: transfer.trainer(name, source, task, runtime) for name in transfer.compared}
    left_out = {name: reason for name, trainer in trainers.items() if (reason := trainer.not_applicable())}
    plans = transfer.cost_plans(runtime, len(data.train), len(data.validation), len(data.test))
    plans = [plan for plan in plans if plan.name not in left_out]
    processes = workers.for_runtime(runtime).count
    estimate = cost.estimate_cost(task, plans, runtime.time_budget_minutes, BUDGET, processes=processes)
    title = f"Cost of the comparison's first look ({len(plans)} strategies, {len(transfer.first_look_seeds)} seeds)"
    print(estimate.text(title), flush=True)  # a table for the terminal, not a log record the handler wraps
    logger.info("%s: %d trainings, about %.1f min", title, estimate.trainings, estimate.seconds / 60)
    for name, reason in left_out.items():
        logger.info("Not applicable, left out: %s (%s)", name, reason)
    return estimate.table, {**estimate.summary(title), "not_applicable": left_out, "workers": processes}


def first_look(trainer: StrategyTrainer, data: TransferData, seeds: list[int], runtime) -> dict[str, StoredModel]:
    """One strategy's first look: one target model per seed, tuned on validation, trained in the run's
    workers; none when it cannot run on this task."""
    if reason := trainer.not_applicable():
        logger.info("Strategy %s is not applicable here, left out: %s", trainer.name, reason)
        return {}
    tuned = trainer.train(seeds, workers.for_runtime(runtime))
    logger.info(
        "Strategy %s: %s has the best validation accuracy (%.4f)",
        trainer.name,
        tuned.setting_text(),
        tuned.validation_accuracy,
    )
    return trainer.models(tuned, data.train.primary_classes, int(data.train.images.shape[-1]))


def run_later_looks(
    sources: dict[str, StoredModel],
    data: TransferData,
    transfer: TransferParams,
    runtime: RuntimeParams,
    first: dict[str, dict],
    cost_checked: dict,
) -> tuple[dict[str, StoredModel], dict, list[dict]]:
    """The planned looks after the first (headstart.ml.comparison.later_looks): each row decided at each
    look, the open ones trained on the next look's seeds while the budget lasts. Returns the later seeds'
    models (stored), the looks' record with those seeds' evaluations, and their child runs."""
    compared = {name: e for name, e in first.items() if e["seeds"]}
    trainers = {name: trainer_of(name, sources, data, transfer, runtime) for name in compared}
    first_results = pd.DataFrame([{"strategy": n, **s} for n, e in compared.items() for s in e["seeds"]])
    keep = transfer.keep_models == "every_seed"
    test = evaluation_of(data.test.primary_pairs(), data.test.primary_classes, runtime.device, LATER_MODELS, keep)
    calibrate = data.calibrate(runtime.device)
    record, later, models, runs = later_looks(
        trainers,
        compared,
        transfer.look_design(len(compared) - 1),
        transfer.seeds,
        best_baseline(first_results, transfer.baselines),
        workers.for_runtime(runtime),
        budget_clock(runtime.time_budget_minutes, cost_checked.get("started")),
        lambda name, trained: test(name, calibrate(trained)),  # calibrated in place: the models stored
        data.train.primary_classes,
        int(data.train.images.shape[-1]),
    )
    record = {**record, "later_seeds": later, "not_applicable": cost_checked.get("not_applicable", {})}
    return (models if keep else {}), record, runs


def every_seed(first: dict[str, dict], looks: dict) -> pd.DataFrame:
    """One row per seed of every look of every compared strategy (the per-seed lists left out)."""
    return pd.DataFrame(
        [
            {
                "strategy": e["strategy"],
                **{k: v for k, v in seed.items() if k not in PER_SEED_LISTS},
                "grid_images_seen": grid_images(e.get("tuning") or {}),
            }
            for e in first.values()
            if e["seeds"]
            for seed in [*e["seeds"], *looks["later_seeds"].get(e["strategy"], [])]
        ]
    )


def comparison_report(
    data: TransferData, transfer: TransferParams, first: dict[str, dict], looks: dict
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, opening with its verdict per row, its protocol stated) and
    the chart of gains, over every seed of every look."""
    evaluations = [e for e in first.values() if e["seeds"]]
    results = every_seed(first, looks)
    best = looks["best_baseline"]
    comparison = with_decisions(
        compare_to_baseline(results, transfer.baseline, transfer.confidence, transfer.reference_baselines, best),
        looks["decisions"],
    )
    comparison = with_calibration(comparison, results, transfer.confidence)
    classical = {name: folds for name, folds in transfer.classical_folds.items() if name in set(results["strategy"])}
    classes = len(data.train.primary_classes)
    labels = labels_phrase(len(data.train) / classes, len(data.validation) / classes, list(classical))
    protocol = transfer_protocol(
        {"train": data.train, "validation": data.validation, "test": data.test},
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
    level = round(transfer.confidence * 100)
    return comparison, markdown, plot_gains(comparison, best, level, len(transfer.seeds))


def calibration_summary(first: dict[str, dict], looks: dict, confidence: float, seeds: int):
    """Selective prediction and calibration over every seed of every look: accuracy against coverage per
    strategy (a table, with intervals over seeds, and its plot) and a reliability diagram per strategy."""
    per_strategy = {
        name: [*e["seeds"], *looks["later_seeds"].get(name, [])]
        for name, e in first.items()
        if e["seeds"] and "reliability" in e["seeds"][0]
    }
    selective = [(name, seed["selective_accuracy"]) for name, rows in per_strategy.items() for seed in rows]
    table = selective_prediction_table(selective, COVERAGES, confidence)
    pooled = {
        name: {kind: pooled_bins([seed["reliability"][kind] for seed in rows]) for kind in ("raw", "calibrated")}
        for name, rows in per_strategy.items()
    }
    return table, plot_reliability(pooled, BINS), plot_risk_coverage(table, seeds)
