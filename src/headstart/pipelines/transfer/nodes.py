"""Thin nodes over headstart.ml: estimate the cost, train one strategy over seeds, evaluate it, compare them all."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost, feature_cache
from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.metrics import compare_to_baseline
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_gains
from headstart.ml.prediction import as_array
from headstart.ml.reports import labels_phrase, transfer_protocol, transfer_report, verdict
from headstart.ml.run_records import grid_images, strategy_evaluation, tuned_models
from headstart.ml.selection import choose_candidate
from headstart.ml.strategies import StrategyConfig, setting_text, target_task, train_tuned
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
    """The comparison's cost before any training (headstart.ml.cost): per strategy, the trainings of its
    grid × seeds and their seconds from steps timed here; printed, and its summary for MLflow. A strategy
    naming an advise candidate as its `source` is checked here, before any training: the candidate exists."""
    for name, params in transfer.compared.items():
        if params.source is not None:
            strategy_source(source_candidates or {}, params.source, name)
    plans = transfer.cost_plans(runtime, len(target_train), len(target_validation), len(target_test))
    task = target_task(source_model["source"], target_train, target_validation, source_train, target_unlabelled)
    estimate = cost.estimate_cost(task, plans, runtime.max_minutes)
    title = f"Cost of the comparison ({len(plans)} strategies)"
    logger.info("%s", estimate.text(title))
    return estimate.table, estimate.summary(title)


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


def check_cost_limit(transfer_cost: dict, runtime: RuntimeParams) -> dict:
    """Stops the run before any training when the estimate exceeds runtime.max_minutes, naming what to cut;
    every training node waits for its output."""
    cost.check_limit(transfer_cost, runtime.max_minutes)
    return {"checked": True, "estimated_minutes": transfer_cost["estimated_minutes"]}


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
    """One target model per seed, made by the strategy from the source model, tuned on validation.
    Source images and unlabelled target images arrive only for the strategies that use them;
    `cost_checked` (check_cost_limit's output) only orders the cost check before every training."""
    if strategy not in transfer.strategies:
        raise ValueError(f"transfer.strategies has no '{strategy}'; define its parameters in parameters_transfer.yml")
    params = transfer.strategies[strategy]
    source = strategy_source(source_model, params.source, strategy)
    task = target_task(source, target_train, target_validation, source_train, target_unlabelled)
    train, validation = task.train, task.validation

    def checkpoint_for(setting: dict, seed: int) -> Path:
        extra = [t for t in (task.source and task.source[0], task.unlabelled) if t is not None]
        made_from = fingerprint(
            params.model_dump(mode="json"), setting, seed, source.state, *train, *validation, *extra
        )
        return Path(runtime.checkpoint_dir) / f"{strategy}-seed{seed}-{made_from[:16]}.pt"

    grid = params.tuning_grid(transfer.lr_scales)

    def label_of(setting: dict, seed: int) -> str:
        """The training's name in its live MLflow child run: a candidate of a grid says which."""
        return f"{strategy} seed {seed}" + (f" ({setting_text(setting)})" if len(grid) > 1 else "")

    def configure(setting: dict, seed: int) -> StrategyConfig:
        config = params.to_config(seed, runtime, **setting)
        label = label_of(setting, seed)
        probe = config.probe and config.probe.model_copy(update={"label": label})
        return config.model_copy(
            update={"training": config.training.model_copy(update={"label": label}), "probe": probe}
        )

    prefix_images = feature_cache.counted["images"]
    try:
        tuned = train_tuned(task, grid, transfer.seeds, configure, checkpoint_for, transfer.racing_eta)
    except FloatingPointError as error:
        raise FloatingPointError(f"strategy {strategy}, {error}") from error
    logger.info(
        "Strategy %s: %s has the best validation accuracy (%.4f)",
        strategy,
        tuned.setting_text(),
        tuned.validation_accuracy,
    )
    return tuned_models(
        tuned,
        strategy,
        params.model_dump(mode="json"),
        params.uses,
        target_train.primary_classes,
        int(target_train.images.shape[-1]),
        label_of,
        feature_cache.counted["images"] - prefix_images,
    )


def models_to_keep(models: dict[str, StoredModel], keep: str) -> dict[str, StoredModel]:
    """The models the catalog stores (`transfer.keep_models`): every seed's, or the best seed's on validation."""
    if keep == "every_seed":
        return models
    name = max(models, key=lambda n: models[n].info["validation_accuracy"])
    return {name: models[name]}


def evaluate_target_models(
    trained_models: dict[str, StoredModel],
    target_test: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    *,
    strategy: str,
) -> tuple[dict[str, StoredModel], dict, list[dict]]:
    """The models to store, test metrics per seed, and one MLflow child run per seed (params, curves,
    confusion matrix, report, and a reference to its stored model: the catalog file is the one copy)."""
    kept = models_to_keep(trained_models, transfer.keep_models)
    evaluation, runs = strategy_evaluation(
        strategy, trained_models, set(kept), *target_test.primary_pairs(), target_test.primary_classes, runtime.device
    )
    return kept, evaluation, runs


def compare_strategies(
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    *evaluations: dict,
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, opening with its verdict, its protocol stated) and the chart of gains."""
    results = pd.DataFrame(
        [
            {
                "strategy": e["strategy"],
                **{k: v for k, v in seed.items() if k != "confusion_matrix"},
                "grid_images_seen": grid_images(e.get("tuning") or {}),
            }
            for e in evaluations
            for seed in e["seeds"]
        ]
    )
    comparison = compare_to_baseline(results, transfer.baseline, transfer.confidence, transfer.reference_baselines)
    best = comparison.loc[comparison["role"] == "best baseline", "strategy"].iloc[0]
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
    )
    markdown = transfer_report(
        comparison, verdict(comparison, labels, transfer.confidence, transfer.baseline), protocol
    )
    return comparison, markdown, plot_gains(comparison, best, level, len(transfer.seeds))


def choose_best_model(target_test: LabelledImages, *strategy_models: dict[str, StoredModel]) -> dict:
    """This run's best model, chosen on validation (as promotion chooses), to log as an MLflow model."""
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
