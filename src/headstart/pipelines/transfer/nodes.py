"""Thin nodes over headstart.ml: estimate the cost, train one strategy over seeds, evaluate it, compare them all."""

from __future__ import annotations

import logging
import time

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost, progress
from headstart.ml import transfer_comparison as steps
from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import as_array
from headstart.ml.run_records import strategy_evaluation
from headstart.ml.selection import choose_candidate
from headstart.ml.transfer_comparison import BUDGET, TransferData
from headstart.params import RuntimeParams, TransferParams

logger = logging.getLogger(__name__)


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
    """The first look's cost before any training, printed; what cannot run here, named."""
    data = TransferData(target_train, target_validation, target_test, source_train, target_unlabelled)
    return steps.first_look_estimate(source_model["source"], source_candidates or {}, data, transfer, runtime)


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
    """The strategy's first look: one model per seed, tuned on validation (`cost_checked` orders the check first)."""
    data = TransferData(target_train, target_validation, None, source_train, target_unlabelled)
    trainer = steps.trainer_of(strategy, source_model, data, transfer, runtime)
    return steps.first_look(trainer, data, transfer.first_look_seeds, runtime)


def models_to_keep(models: dict[str, StoredModel], keep: str) -> dict[str, StoredModel]:
    """The models the catalog stores (`transfer.keep_models`): every seed's, or the best seed's on validation."""
    if keep == "every_seed" or not models:
        return models
    name = max(models, key=lambda n: models[n].info["validation_accuracy"])
    return {name: models[name]}


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
    metrics per seed, and one MLflow child run per seed (the catalog file is the one copy of a model)."""
    if not trained_models:  # not applicable to this task: named in the estimate and the report
        return {}, {"strategy": strategy, "seeds": []}, []
    trained_models = TransferData(target_train, target_validation).calibrate(runtime.device)(trained_models)
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
    """The planned looks after the first: the later seeds' models, the looks' record and their child runs."""
    data = TransferData(target_train, target_validation, target_test, source_train, target_unlabelled)
    sources = {**(source_candidates or {}), **source_model}
    return steps.run_later_looks(sources, data, transfer, runtime, first_look, cost_checked)


def compare_strategies(
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    first_look: dict[str, dict],
    looks: dict,
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, its verdicts and protocol) and the chart of gains."""
    data = TransferData(target_train, target_validation, target_test)
    return steps.comparison_report(data, transfer, first_look, looks)


def summarise_calibration(
    first_look: dict[str, dict], looks: dict, transfer: TransferParams
) -> tuple[pd.DataFrame, Figure, Figure]:
    """Selective prediction and calibration over every seed of every look (a table, its plot, reliability)."""
    return steps.calibration_summary(first_look, looks, transfer.confidence, len(transfer.seeds))


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
