"""Thin nodes over headstart.ml.studies: the Yosinski layer-transfer sweep on one budget and split."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.config import TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_label_budget, labels_used_per_class
from headstart.ml.metrics import prefix_test_metrics, summarise_over_seeds
from headstart.ml.models import block_count
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_layer_sweep
from headstart.ml.reports import SELECTION, interval
from headstart.ml.strategies import StrategyConfig, TargetTask
from headstart.ml.studies import layer_sweep_config, train_and_test
from headstart.ml.transfer import TransferSpec
from headstart.params import IngestParams, LayerSweepParams, RuntimeParams

logger = logging.getLogger(__name__)


def run_layer_sweep(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    layer_sweep: LayerSweepParams,
    ingest: IngestParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (arm, blocks, seed, test metrics), and one MLflow child run per row. At n = 0 the
    arms are the same model (nothing copied or frozen): it is trained once and reported for each."""
    source = source_model["source"]
    total = block_count(source.build())
    blocks = layer_sweep.blocks if layer_sweep.blocks is not None else list(range(total + 1))
    too_deep = [n for n in blocks if n > total]
    if too_deep:
        raise ValueError(f"layer_sweep.blocks: {too_deep} exceed the source model's {total} blocks")
    num_classes = len(target_train_pool.primary_classes)
    test = target_test.primary_pairs()
    draws = {
        seed: draw_label_budget(
            target_train_pool,
            target_validation_pool,
            layer_sweep.labels_per_class,
            ingest.split.validation_labels_per_class,
            seed,
        )
        for seed in layer_sweep.seeds
    }
    rows, runs = [], []
    for seed, (train_labels, validation_labels) in draws.items():
        train, validation = train_labels.primary_pairs(), validation_labels.primary_pairs()
        used = labels_used_per_class(train_labels, validation_labels)
        base = StrategyConfig(
            procedure="fit", spec=TransferSpec(), training=TrainConfig.of(layer_sweep.training, runtime, seed)
        )
        for n in blocks:
            for position, (arm, settings) in enumerate(layer_sweep.arms.items()):
                if n == 0 and position > 0:  # the same model as the first arm's
                    rows.append({**rows[-1], "arm": arm})
                    continue
                logger.info("Layer sweep: %s, %d blocks, seed %d", arm, n, seed)
                result, metrics = train_and_test(
                    TargetTask(source.config, source.state, num_classes, train, validation),
                    test,
                    layer_sweep_config(base, settings, n),
                )
                point = {"arm": arm, "blocks": n, "seed": seed, "labels_used": used}
                rows.append({**point, **metrics})
                runs.append(
                    {
                        "run_name": f"layer_sweep {arm} n={n} seed {seed}",
                        "params": {
                            "study": "layer_sweep",
                            **point,
                            "labels_per_class": layer_sweep.labels_per_class,
                            **layer_sweep.training.model_dump(mode="json"),
                        },
                        "history": result.history,
                        "metrics": {"blocks": n, **prefix_test_metrics(metrics)},
                        "tags": {"study": "layer_sweep", "arm": arm},
                    }
                )
    return pd.DataFrame(rows), runs


def summarise_layer_sweep(
    sweep: pd.DataFrame, layer_sweep: LayerSweepParams, target_test: LabelledImages
) -> tuple[pd.DataFrame, str, Figure]:
    """Mean test accuracy with its 95% interval per arm and n (CSV-ready and Markdown), and the plot."""
    table = summarise_over_seeds(sweep, ["arm", "blocks"])
    markdown = "\n".join(
        [
            "# Layer-transfer sweep (Yosinski et al. 2014)",
            "",
            "## Protocol",
            "",
            f"- Labels: k = {layer_sweep.labels_per_class} per class to train, drawn per seed from the target train "
            "pool, and the validation labels drawn from the validation split "
            "(ingest.split.validation_labels_per_class): "
            f"{sweep['labels_used'].mean():g} labels used per class. Test split: {len(target_test)} images, for the "
            "reported accuracy only.",
            f"- {interval(0.95, layer_sweep.seeds)}",
            f"- One budget and set of rates for every arm and n (no tuning grid). {SELECTION}",
            "- Arms: n blocks copied from the source and frozen (copied_frozen; their batch-norm statistics stay the "
            "source's), copied and fine-tuned (copied_finetuned), or randomly initialised and frozen (random_frozen, "
            "the control; its batch-norm statistics, never learned, are estimated on the target data).",
            "",
            table.pivot(index="blocks", columns="arm", values="accuracy_text")[list(layer_sweep.arms)]
            .reset_index()
            .to_markdown(index=False),
            "",
        ]
    )
    return table.drop(columns="accuracy_text"), markdown, plot_layer_sweep(table)
