"""Thin nodes over headstart.ml.studies: the Yosinski layer-transfer sweep on one budget and split."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost
from headstart.ml.config import TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_label_budget
from headstart.ml.metrics import summarise_over_seeds
from headstart.ml.models import block_count
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_layer_sweep
from headstart.ml.reports import layer_sweep_report
from headstart.ml.strategies import StrategyConfig, TargetTask
from headstart.ml.studies import layer_sweep as sweep_layers
from headstart.ml.studies import layer_sweep_config
from headstart.ml.transfer import TransferSpec
from headstart.ml.workers import for_runtime
from headstart.params import IngestParams, LayerSweepParams, RuntimeParams

logger = logging.getLogger(__name__)
KNOBS = cost.Knobs(seeds="layer_sweep.seeds", strategies="layer_sweep.arms", epochs="layer_sweep.training.epochs")


def sweep_blocks(layer_sweep: LayerSweepParams, source: StoredModel) -> list[int]:
    """The n of the sweep: layer_sweep.blocks, or 0 … every block of the source model."""
    total = block_count(source.build())
    blocks = layer_sweep.blocks if layer_sweep.blocks is not None else list(range(total + 1))
    too_deep = [n for n in blocks if n > total]
    if too_deep:
        raise ValueError(f"layer_sweep.blocks: {too_deep} exceed the source model's {total} blocks")
    return blocks


def sweep_points(layer_sweep: LayerSweepParams, blocks: list[int]) -> list[tuple[int, str, bool]]:
    """(n, arm, trained): at n = 0 the arms are one model, trained for the first arm only."""
    return [(n, arm, n > 0 or position == 0) for n in blocks for position, arm in enumerate(layer_sweep.arms)]


def estimate_layer_sweep_cost(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    layer_sweep: LayerSweepParams,
    ingest: IngestParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, dict]:
    """The sweep's cost before any training (headstart.ml.cost): per arm and n, one training per seed,
    from steps timed here; printed, and its summary for MLflow."""
    source = source_model["source"]
    seed = layer_sweep.seeds[0]
    train, validation = draw_label_budget(
        target_train_pool,
        target_validation_pool,
        layer_sweep.labels_per_class,
        ingest.split.validation_labels_per_class,
        seed,
    )
    base = StrategyConfig(
        procedure="fit", spec=TransferSpec(), training=TrainConfig.of(layer_sweep.training, runtime, seed)
    )
    plans = [
        cost.Plan(
            f"{arm} n={n}",
            (layer_sweep_config(base, layer_sweep.arms[arm], n),),
            len(layer_sweep.seeds),
            len(train),
            len(validation),
            len(target_test),
            group=arm,
        )
        for n, arm, trained in sweep_points(layer_sweep, sweep_blocks(layer_sweep, source))
        if trained
    ]
    task = TargetTask(
        source.config,
        source.state,
        len(target_train_pool.primary_classes),
        target_train_pool.primary_pairs(),
        target_validation_pool.primary_pairs(),
    )
    trainings = len(plans) * len(layer_sweep.seeds)
    processes = min(for_runtime(runtime).count, trainings)
    estimate = cost.estimate_cost(task, plans, runtime.time_budget_minutes, KNOBS, processes)
    title = f"Cost of the layer sweep ({len(plans)} points of arm × n)"
    logger.info("%s", estimate.text(title))
    return estimate.table, estimate.summary(title)


def check_layer_sweep_cost(layer_sweep_cost: dict, runtime: RuntimeParams) -> dict:
    """Stops the run before any training when the estimate exceeds runtime.time_budget_minutes, naming what to cut."""
    cost.check_limit(layer_sweep_cost, runtime.time_budget_minutes, KNOBS)
    return {"checked": True, "estimated_minutes": layer_sweep_cost["estimated_minutes"]}


def run_layer_sweep(
    source_model: dict[str, StoredModel],
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    layer_sweep: LayerSweepParams,
    ingest: IngestParams,
    runtime: RuntimeParams,
    cost_checked: dict | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (arm, blocks, seed, test metrics), and one MLflow child run per row. At n = 0 the
    arms are the same model (nothing copied or frozen): it is trained once and reported for each.
    `cost_checked` (the cost check's output) only orders the check first."""
    source = source_model["source"]
    blocks = sweep_blocks(layer_sweep, source)
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
        for_runtime(runtime),
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
