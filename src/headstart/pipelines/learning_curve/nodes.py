"""Thin nodes over headstart.ml.studies: one training per strategy × budget × seed, on one split."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_labelled_subset
from headstart.ml.metrics import prefix_test_metrics
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_learning_curve
from headstart.ml.studies import labels_saved, train_and_test, with_min_batches
from headstart.params import LearningCurveParams, RuntimeParams, TransferParams

logger = logging.getLogger(__name__)


def run_learning_curve(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    learning_curve: LearningCurveParams,
    transfer: TransferParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (strategy, labels_per_class, k, seed, test metrics), and one MLflow child run per row.

    Seed s draws the k labels per class with seed s (nested across budgets) and seeds the training,
    so the intervals include which labels one happened to get."""
    strategies = [transfer.baseline, *(s for s in learning_curve.strategies if s != transfer.baseline)]
    unknown = [s for s in strategies if s not in transfer.strategies]
    if unknown:
        raise ValueError(f"learning_curve.strategies: {', '.join(unknown)} not in transfer.strategies ({', '.join(transfer.strategies)})")
    source = source_model["source"]
    num_classes = len(target_train_pool.primary_classes)
    validation, test = target_validation.primary_pairs(), target_test.primary_pairs()
    rows, runs = [], []
    for budget in learning_curve.labels_per_class:
        for seed in learning_curve.seeds:
            train = draw_labelled_subset(target_train_pool, budget, seed).primary_pairs()
            k = len(train[1]) / num_classes
            for strategy in strategies:
                params = transfer.strategies[strategy]
                logger.info("Learning curve: %s, %s labels per class, seed %d", strategy, budget, seed)
                config = with_min_batches(params.to_config(seed, runtime), learning_curve.min_batches_per_epoch)
                result, metrics = train_and_test(source.config, source.state, num_classes, train, validation, test, config)
                point = {"strategy": strategy, "labels_per_class": str(budget), "k": k, "seed": seed}
                rows.append({**point, **metrics})
                runs.append(
                    {
                        "run_name": f"learning_curve {strategy} k={budget} seed {seed}",
                        "params": {"study": "learning_curve", **point, **params.model_dump(mode="json")},
                        "history": result.history,
                        "metrics": {"k": k, **prefix_test_metrics(metrics)},
                        "tags": {"study": "learning_curve", "strategy": strategy},
                    }
                )
    return pd.DataFrame(rows), runs


def summarise_learning_curve(curve: pd.DataFrame, transfer: TransferParams) -> tuple[pd.DataFrame, str, Figure]:
    """The labels-saved table (CSV and Markdown) and the curve plot."""
    saved = labels_saved(curve, transfer.baseline)
    markdown = "\n".join(
        [
            "# Labels saved by transfer",
            "",
            f"For each strategy and budget (labels per class): the smallest budget at which `{transfer.baseline}` "
            "reaches the strategy's mean test accuracy, and the labels per class that saves "
            "(negative: the baseline does as well with fewer).",
            "",
            saved.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
    return saved, markdown, plot_learning_curve(curve, transfer.baseline, transfer.confidence)
