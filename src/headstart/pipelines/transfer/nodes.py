"""Thin nodes over headstart.ml: train one strategy over seeds, evaluate it, compare all strategies."""

from __future__ import annotations

import logging
from pathlib import Path
from statistics import mean

import pandas as pd
import safetensors.torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.metrics import compare_to_baseline, prefix_test_metrics, evaluation_record
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_comparison, plot_confusion_matrix
from headstart.ml.strategies import train_strategy
from headstart.ml.training import evaluate, resolve_device
from headstart.ml.transfer import target_config
from headstart.params import RuntimeParams, TransferParams

logger = logging.getLogger(__name__)


def train_target_models(
    source_model: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    transfer: TransferParams,
    runtime: RuntimeParams,
    *,
    strategy: str,
) -> dict[str, StoredModel]:
    """One target model per seed, made by the strategy from the source model."""
    if strategy not in transfer.strategies:
        raise ValueError(f"transfer.strategies has no '{strategy}'; define its parameters in parameters_transfer.yml")
    params = transfer.strategies[strategy]
    source = source_model["source"]
    train, validation = target_train.primary_pairs(), target_validation.primary_pairs()
    num_classes = len(target_train.primary_classes)
    best_score, models = None, {}
    for scale in transfer.lr_scales:
        trained = {}
        for seed in transfer.seeds:
            config = params.to_config(seed, runtime, scale)
            made_from = fingerprint(params.model_dump(mode="json"), scale, seed, source.state, *train, *validation)
            checkpoint = Path(runtime.checkpoint_dir) / f"{strategy}-seed{seed}-{made_from[:16]}.pt"
            logger.info("Training strategy %s, seed %d, learning-rate scale %g", strategy, seed, scale)
            result = train_strategy(source.config, source.state, num_classes, train, validation, config, checkpoint)
            for path in checkpoint.parent.glob(f"*{checkpoint.name}"):  # finished: its checkpoints are spent
                path.unlink()
            info = {
                "strategy": strategy,
                "seed": seed,
                "lr_scale": scale,
                "strategy_params": params.model_dump(mode="json"),
                "classes": target_train.primary_classes,
                "history": result.history,
                "transfer_report": result.report.to_dict(),
                "train_seconds": result.train_seconds,
                "validation_accuracy": result.validation_accuracy,
                "validation_loss": result.validation_loss,
            }
            config_out = target_config(source.config, num_classes, config.spec)
            trained[f"seed_{seed}"] = StoredModel.from_module(result.model, config_out, info)
        score = (mean(m.info["validation_accuracy"] for m in trained.values()), -mean(m.info["validation_loss"] for m in trained.values()))
        if best_score is None or score > best_score:
            best_score, models = score, trained
    if len(transfer.lr_scales) > 1:
        logger.info("Strategy %s: learning-rate scale %g has the best validation accuracy (%.4f)", strategy,
                    next(iter(models.values())).info["lr_scale"], best_score[0])
    return models


def evaluate_target_models(
    target_models: dict[str, StoredModel], target_test: LabelledImages, runtime: RuntimeParams, *, strategy: str
) -> tuple[dict, list[dict]]:
    """Test metrics per seed, and one MLflow child run per seed (params, curves, weights, confusion matrix, report)."""
    images, labels = target_test.primary_pairs()
    device = resolve_device(runtime.device)
    evaluation = {"strategy": strategy, "classes": target_test.primary_classes, "seeds": []}
    runs = []
    for stored in target_models.values():
        info = stored.info
        measured = evaluate(stored.build().to(device), images, labels)
        matrix = confusion_matrix(labels.numpy(), measured["predictions"].numpy(), labels=range(len(evaluation["classes"])))
        report = info["transfer_report"]
        metrics = {
            **evaluation_record(measured, report["trainable_parameters"], info["train_seconds"]),
            "frozen_parameters": report["frozen_parameters"],
            "selected_validation_accuracy": info["validation_accuracy"],
            "lr_scale": info["lr_scale"],
        }
        evaluation["seeds"].append({"seed": info["seed"], **metrics, "confusion_matrix": matrix.tolist()})
        runs.append(
            {
                "run_name": f"{strategy} seed {info['seed']}",
                "params": {"strategy": strategy, "seed": info["seed"], "lr_scale": info["lr_scale"], **info["strategy_params"]},
                "history": info["history"],
                "metrics": prefix_test_metrics(metrics),
                "tags": {"strategy": strategy, "seed": str(info["seed"])},
                "artifacts": {
                    "model.safetensors": safetensors.torch.save(stored.state),
                    "confusion_matrix.png": plot_confusion_matrix(matrix, evaluation["classes"], f"{strategy}, seed {info['seed']}"),
                    "transfer_report.json": report,
                },
            }
        )
    return evaluation, runs


def compare_strategies(transfer: TransferParams, *evaluations: dict) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown) and its bar chart."""
    results = pd.DataFrame(
        [{"strategy": e["strategy"], **{k: v for k, v in seed.items() if k != "confusion_matrix"}} for e in evaluations for seed in e["seeds"]]
    )
    comparison = compare_to_baseline(results, transfer.baseline, transfer.confidence)
    level = round(transfer.confidence * 100)
    markdown = "\n".join(
        [
            "# Transfer strategies against the from-scratch baseline",
            "",
            f"Test accuracy: mean over {len(transfer.seeds)} seeds with its {level}% t-interval. "
            f"gain_points: accuracy minus `{transfer.baseline}`'s, in percentage points, paired by seed, "
            f"with its {level}% t-interval. negative_transfer: the whole gain interval is below zero.",
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
    return comparison, markdown, plot_comparison(comparison, transfer.baseline)
