"""Thin nodes over headstart.ml.studies: the Yosinski layer-transfer sweep on one budget and split."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.config import TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import summarise_over_seeds
from headstart.ml.models import block_count
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_layer_sweep
from headstart.ml.reports import layer_sweep_report
from headstart.ml.studies import layer_sweep as sweep_layers
from headstart.params import IngestParams, LayerSweepParams, RuntimeParams


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
    return sweep_layers(
        source,
        target_train_pool,
        target_validation_pool,
        target_test,
        blocks,
        layer_sweep.arms,
        layer_sweep.labels_per_class,
        ingest.split.validation_labels_per_class,
        layer_sweep.seeds,
        lambda seed: TrainConfig.of(layer_sweep.training, runtime, seed),
        layer_sweep.training.model_dump(mode="json"),
    )


def summarise_layer_sweep(
    sweep: pd.DataFrame, layer_sweep: LayerSweepParams, target_test: LabelledImages
) -> tuple[pd.DataFrame, str, Figure]:
    """Mean test accuracy with its 95% interval per arm and n (CSV-ready and Markdown), and the plot."""
    table = summarise_over_seeds(sweep, ["arm", "blocks"])
    markdown = layer_sweep_report(
        sweep, table, layer_sweep.labels_per_class, layer_sweep.seeds, list(layer_sweep.arms), len(target_test)
    )
    return table.drop(columns="accuracy_text"), markdown, plot_layer_sweep(table)
