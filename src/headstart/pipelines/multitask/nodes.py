"""Thin nodes over headstart.ml.multitask: build the data set, train every method × seed, evaluate, compare."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import hide_labels, load_manifest, overlay_digit_pairs
from headstart.ml.data.splits import stratified_split
from headstart.ml.metrics import compare_multitask, prefix_test_metrics
from headstart.ml.models.stored import StoredModel
from headstart.ml.multitask import evaluate_multitask, train_method
from headstart.ml.plots import plot_delta_m
from headstart.ml.reports import SELECTION, interval, multitask_verdict
from headstart.ml.training import resolve_device, scale_images
from headstart.params import IngestParams, MultitaskParams, RuntimeParams

logger = logging.getLogger(__name__)


def _random_split(data: LabelledImages, validation: float, test: float, seed: int) -> tuple[LabelledImages, ...]:
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_test, n_validation = round(test * len(data)), round(validation * len(data))
    return (
        data.subset(order[n_test + n_validation :]),
        data.subset(order[n_test : n_test + n_validation]),
        data.subset(order[:n_test]),
    )


def build_multitask_data(
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    source_train: LabelledImages,
    source_validation: LabelledImages,
    multitask: MultitaskParams,
    ingest: IngestParams,
) -> tuple[LabelledImages, LabelledImages, LabelledImages]:
    """Train, validation and test splits with one label tensor per task (-1 where missing)."""
    data = multitask.data
    if data.kind == "multi_digits":
        splits = (
            overlay_digit_pairs(target_train_pool, data.train_pairs, data.seed),
            overlay_digit_pairs(target_validation_pool, data.validation_pairs, data.seed + 1),
            overlay_digit_pairs(target_test, data.test_pairs, data.seed + 2),
        )
    elif data.kind == "printed_digits_tasks":
        validation, test = stratified_split(source_validation, 0.5, data.seed, "source_validation")
        tasks = data.tasks or list(source_train.labels)
        unknown = [t for t in tasks if t not in source_train.labels]
        if unknown:
            raise ValueError(
                f"multitask.data.tasks: {unknown} not among the printed digits' tasks {list(source_train.labels)}"
            )
        splits = tuple(
            LabelledImages(d.images, {t: d.labels[t] for t in tasks}, {t: d.classes[t] for t in tasks})
            for d in (source_train, validation, test)
        )
    else:
        loaded = load_manifest(data.path, ingest.image.size, ingest.image.channels, data.image_column)
        splits = _random_split(loaded, data.validation_fraction, data.test_fraction, data.seed)
    if multitask.missing_labels:
        hidden = multitask.missing_labels
        splits = (hide_labels(splits[0], hidden.task, hidden.fraction, hidden.seed), *splits[1:])
    return splits


def train_multitask_methods(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask: MultitaskParams,
    runtime: RuntimeParams,
) -> dict[str, StoredModel]:
    """Per method and seed, its network(s): `<method>-seed<s>-all`, or one per task for single-task."""
    classes = {task: len(names) for task, names in multitask_train.classes.items()}
    trunk = multitask.trunk_config(source_model["source"].config, int(multitask_train.images.shape[1]))
    source_state = source_model["source"].state if multitask.trunk.init == "source" else None
    models = {}
    for method_name, method in multitask.methods.items():
        logger.info("Multi-task: %s, seeds %s", method_name, multitask.seeds)
        for network in train_method(
            method.sharing,
            method.weighting.build,
            method.penalty,
            trunk,
            classes,
            {"head_depth": multitask.head_depth, "head_width": multitask.head_width},
            (multitask_train.images, multitask_train.labels),
            (multitask_validation.images, multitask_validation.labels),
            multitask.seeds,
            lambda seed: multitask.training.to_config(seed, runtime),
            source_state,
            Path(runtime.checkpoint_dir),
            method_name,
        ):
            info = {"method": method_name, "method_params": method.model_dump(mode="json"), **network.info}
            models[f"{method_name}-seed{info['seed']}-{info['part']}"] = StoredModel.from_module(
                network.model, network.config, info
            )
    return models


def _inference_seconds(models: list[torch.nn.Module], images: torch.Tensor, device: torch.device) -> float:
    """Seconds to predict every task for `images` with `models` (all single-task networks, or one)."""
    started = time.perf_counter()
    with torch.no_grad():
        for model in models:
            model.eval()
            for start in range(0, len(images), 512):
                model(scale_images(images[start : start + 512].to(device)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def evaluate_multitask_methods(
    multitask_models: dict[str, StoredModel], multitask_test: LabelledImages, runtime: RuntimeParams
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (method, seed, task, test metrics, cost) and one MLflow child run per method × seed."""
    device = resolve_device(runtime.device)
    grouped: dict[tuple[str, int], list[StoredModel]] = {}
    for stored in multitask_models.values():
        grouped.setdefault((stored.info["method"], stored.info["seed"]), []).append(stored)
    rows, runs = [], []
    for (method, seed), parts in grouped.items():
        built = [stored.build().to(device) for stored in parts]
        cost = {
            "parameters": sum(p.numel() for m in built for p in m.parameters()),
            "train_seconds": sum(stored.info["train_seconds"] for stored in parts),
            "inference_seconds": _inference_seconds(built, multitask_test.images, device),
        }
        metrics = {}
        for model in built:
            metrics.update(
                evaluate_multitask(model, multitask_test.images, {t: multitask_test.labels[t] for t in model.tasks})
            )
        for task, measured in metrics.items():
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "task": task,
                    "accuracy": measured["accuracy"],
                    "macro_f1": measured["macro_f1"],
                    "nll": measured["nll"],
                    **cost,
                }
            )
        history: dict[int, dict] = {}
        for stored in parts:  # one network per task for single-task: their curves side by side
            for record in stored.info["history"]:
                suffix = "" if stored.info["part"] == "all" else f"_{stored.info['part']}"
                entry = history.setdefault(record["epoch"], {"epoch": record["epoch"]})
                entry.update(
                    {
                        f"{k}{suffix}" if suffix and k != "epoch" and not k.endswith(suffix) else k: v
                        for k, v in record.items()
                    }
                )
        runs.append(
            {
                "run_name": f"multitask {method} seed {seed}",
                "params": {"study": "multitask", "method": method, "seed": seed, **parts[0].info["method_params"]},
                "history": [history[epoch] for epoch in sorted(history)],
                "metrics": {
                    **{
                        f"{task}.{k}": v
                        for task, m in metrics.items()
                        for k, v in prefix_test_metrics(
                            {key: m[key] for key in ("accuracy", "macro_f1", "nll")}
                        ).items()
                    },
                    **cost,
                },
                "tags": {"study": "multitask", "method": method},
            }
        )
    return pd.DataFrame(rows), runs


def compare_multitask_methods(
    results: pd.DataFrame,
    multitask: MultitaskParams,
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    multitask_test: LabelledImages,
) -> tuple[pd.DataFrame, str, Figure]:
    """The comparison table (CSV and Markdown, opening with its verdict, protocol and sign conventions
    stated) and the Δm chart."""
    order = {name: i for i, name in enumerate(multitask.methods)}
    results = results.sort_values("method", key=lambda m: m.map(order), kind="stable")
    comparison = compare_multitask(results, multitask.baseline)
    tasks = ", ".join(multitask_train.labels)
    labels = f"{len(multitask_train)} training + {len(multitask_validation)} validation images (tasks: {tasks})"
    markdown = "\n".join(
        [
            "# Multi-task methods against single-task networks",
            "",
            "## Verdict",
            "",
            multitask_verdict(comparison, multitask.baseline, labels, 0.95),
            "",
            "## Protocol",
            "",
            f"- Data ({multitask.data.kind}): train {len(multitask_train)}, validation {len(multitask_validation)}, "
            f"test {len(multitask_test)} images, each labelled for every task ({', '.join(multitask_train.labels)}) "
            "unless marked missing. Multi-digit pairs are drawn within the target train pool, the whole validation "
            "split and the test split respectively, so every method uses the same labels, validation included.",
            f"- {interval(0.95, multitask.seeds)}",
            f"- One budget for every method ({multitask.training.epochs} epochs, the same rates); no tuning grid. "
            f"{SELECTION}",
            "",
            "## Results",
            "",
            f"Per task: mean test accuracy over {len(multitask.seeds)} seeds with its 95% t-interval. "
            f"Δm (Maninis et al. 2019): mean relative change of every task's accuracy and macro-F1 against "
            f"`{multitask.baseline}`, in %, **positive = worse**. Δp (LibMTL): per task the mean relative change "
            "of its metrics, then the mean over tasks, in %, **positive = better** (with the same metrics for every "
            "task, Δp = −Δm). Both are computed per seed (paired) and given with their 95% interval. Cost: parameters, "
            "training seconds and inference seconds on the test split, of one multi-task network vs all "
            "single-task networks.",
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
    return comparison, markdown, plot_delta_m(comparison, multitask.baseline, len(multitask.seeds))
