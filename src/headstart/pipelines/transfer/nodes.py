"""Thin nodes over headstart.ml: estimate the cost, train one strategy over seeds, evaluate it, compare them all."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from headstart.ml import cost
from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.metrics import compare_to_baseline, evaluation_record, prefix_test_metrics
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_confusion_matrix, plot_gains
from headstart.ml.prediction import as_array
from headstart.ml.reports import transfer_protocol
from headstart.ml.selection import choose_candidate
from headstart.ml.strategies import TUNED_SETTINGS, StrategyConfig, TargetTask, setting_text, train_tuned
from headstart.ml.training import evaluate, resolve_device
from headstart.params import RuntimeParams, TransferParams

logger = logging.getLogger(__name__)


def target_task(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
) -> TargetTask:
    """What every strategy of the comparison shares: the source model and the target's labelled data
    (and, for the strategies that use them, the source images and the unlabelled target images)."""
    source = source_model["source"]
    return TargetTask(
        source.config,
        source.state,
        len(target_train.primary_classes),
        target_train.primary_pairs(),
        target_validation.primary_pairs(),
        source=source_train.primary_pairs() if source_train is not None else None,
        unlabelled=target_unlabelled.images if target_unlabelled is not None else None,
        shared_label_space=source_train is not None and source_train.primary_classes == target_train.primary_classes,
    )


def estimate_cost(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    source_train: LabelledImages | None = None,
    target_unlabelled: LabelledImages | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The comparison's cost before any training (headstart.ml.cost): per strategy, the trainings of its
    grid × seeds and their seconds from steps timed here; printed, and its summary for MLflow."""
    plans = [
        cost.Plan(
            name,
            tuple(params.to_config(transfer.seeds[0], runtime, **s) for s in params.tuning_grid(transfer.lr_scales)),
            len(transfer.seeds),
            len(target_train),
            len(target_validation),
            len(target_test),
            required=name in transfer.baselines,
        )
        for name, params in transfer.strategies.items()
    ]
    task = target_task(source_model, target_train, target_validation, source_train, target_unlabelled)
    estimate = cost.estimate_cost(task, plans, runtime.max_minutes)
    title = f"Cost of the comparison ({len(plans)} strategies)"
    logger.info("%s", estimate.text(title))
    return estimate.table, estimate.summary(title)


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
    source = source_model["source"]
    task = target_task(source_model, target_train, target_validation, source_train, target_unlabelled)
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
        probe = config.probe and replace(config.probe, label=label)
        return replace(config, training=replace(config.training, label=label), probe=probe)

    try:
        tuned = train_tuned(task, grid, transfer.seeds, configure, checkpoint_for)
    except FloatingPointError as error:
        raise FloatingPointError(f"strategy {strategy}, {error}") from error
    logger.info(
        "Strategy %s: %s has the best validation accuracy (%.4f)",
        strategy,
        tuned.setting_text(),
        tuned.validation_accuracy,
    )
    strategy_validation_accuracy = sum(r.validation_accuracy for r in tuned.results.values()) / len(tuned.results)
    return {
        f"seed_{seed}": StoredModel.from_module(
            result.model,
            result.config,
            {
                "strategy": strategy,
                "seed": seed,
                **tuned.setting,
                "tuned": tuned.setting_text(),
                "strategy_params": params.model_dump(mode="json"),
                "classes": target_train.primary_classes,
                "image_size": int(target_train.images.shape[-1]),
                "history": result.history,
                "transfer_report": result.report.to_dict(),
                "train_seconds": result.train_seconds,
                "images_seen": result.images_seen,
                "uses": params.uses,
                "validation_accuracy": result.validation_accuracy,
                "validation_loss": result.validation_loss,
                "strategy_validation_accuracy": strategy_validation_accuracy,  # over all seeds, kept or not
                "training_label": label_of(tuned.setting, seed),
            },
        )
        for seed, result in tuned.results.items()
    }


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
    images, labels = target_test.primary_pairs()
    device = resolve_device(runtime.device)
    evaluation = {"strategy": strategy, "classes": target_test.primary_classes, "seeds": []}
    runs = []
    for name, stored in trained_models.items():
        info = stored.info
        measured = evaluate(stored.build().to(device), images, labels)
        matrix = confusion_matrix(
            labels.numpy(), measured["predictions"].numpy(), labels=range(len(evaluation["classes"]))
        )
        report = info["transfer_report"]
        metrics = {
            **evaluation_record(measured, report["trainable_parameters"], info["train_seconds"]),
            "frozen_parameters": report["frozen_parameters"],
            "validation_accuracy": info["validation_accuracy"],
            "images_seen": info.get("images_seen", 0),
            **{name: info[name] for name in TUNED_SETTINGS if name in info},
        }
        evaluation["seeds"].append(
            {
                "seed": info["seed"],
                **metrics,
                "tuned": info["tuned"],
                "uses": info.get("uses", ""),
                "confusion_matrix": matrix.tolist(),
            }
        )
        runs.append(
            {
                "run_name": f"{strategy} seed {info['seed']}",
                "params": {
                    "strategy": strategy,
                    "seed": info["seed"],
                    "tuned": info["tuned"],
                    **info["strategy_params"],
                },
                "history": info["history"],
                "metrics": prefix_test_metrics(metrics),
                "tags": {"strategy": strategy, "seed": str(info["seed"])},
                "model": {"dataset": f"{strategy}.target_models", "name": name} if name in kept else None,
                "training_label": info.get("training_label"),  # the live run its curves went to, if any
                "artifacts": {
                    "confusion_matrix.png": plot_confusion_matrix(
                        matrix, evaluation["classes"], f"{strategy}, seed {info['seed']}"
                    ),
                    "transfer_report.json": report,
                },
            }
        )
    return kept, evaluation, runs


def compare_strategies(
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    *evaluations: dict,
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, its protocol stated) and the chart of gains."""
    results = pd.DataFrame(
        [
            {"strategy": e["strategy"], **{k: v for k, v in seed.items() if k != "confusion_matrix"}}
            for e in evaluations
            for seed in e["seeds"]
        ]
    )
    comparison = compare_to_baseline(results, transfer.baseline, transfer.confidence, transfer.reference_baselines)
    best = comparison.loc[comparison["role"] == "best baseline", "strategy"].iloc[0]
    level = round(transfer.confidence * 100)
    protocol = transfer_protocol(
        {"train": target_train, "validation": target_validation, "test": target_test},
        {name: transfer.strategies[name].tuning_grid(transfer.lr_scales) for name in results["strategy"].unique()},
        transfer.seeds,
        transfer.confidence,
        transfer.baseline,
        transfer.reference_baselines,
        best,
    )
    markdown = "\n".join(
        [
            "# Transfer strategies against the from-scratch and classical baselines",
            "",
            *protocol,
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
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
