"""Thin nodes over headstart.ml.studies: the Yosinski layer-transfer sweep on one budget and split."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import cost
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
    base = StrategyConfig("fit", TransferSpec(), layer_sweep.training.to_config(seed, runtime))
    plans = [
        cost.Plan(
            f"{arm} n={n}",
            (layer_sweep_config(base, layer_sweep.arms[arm].to_arm(), n),),
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
    estimate = cost.estimate_cost(task, plans, runtime.max_minutes, KNOBS)
    title = f"Cost of the layer sweep ({len(plans)} points of arm × n)"
    logger.info("%s", estimate.text(title))
    return estimate.table, estimate.summary(title)


def check_layer_sweep_cost(layer_sweep_cost: dict, runtime: RuntimeParams) -> dict:
    """Stops the run before any training when the estimate exceeds runtime.max_minutes, naming what to cut."""
    cost.check_limit(layer_sweep_cost, runtime.max_minutes, KNOBS)
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
        base = StrategyConfig("fit", TransferSpec(), layer_sweep.training.to_config(seed, runtime))
        for n in blocks:
            for position, (arm, settings) in enumerate(layer_sweep.arms.items()):
                if n == 0 and position > 0:  # the same model as the first arm's
                    rows.append({**rows[-1], "arm": arm})
                    continue
                logger.info("Layer sweep: %s, %d blocks, seed %d", arm, n, seed)
                result, metrics = train_and_test(
                    TargetTask(source.config, source.state, num_classes, train, validation),
                    test,
                    layer_sweep_config(base, settings.to_arm(), n),
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
