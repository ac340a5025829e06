"""Thin nodes over headstart.ml.multitask: build the data set, train every method × seed, evaluate, compare."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import progress, workers
from headstart.ml.config import TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import (
    digit_presence,
    hide_labels,
    load_manifest,
    overlay_digit_pairs,
    with_tasks,
)
from headstart.ml.data.splits import random_split, stratified_split
from headstart.ml.metrics import compare_multitask, in_listed_order
from headstart.ml.models.stored import StoredModel
from headstart.ml.multitask import (
    evaluate_methods,
    outputs_per_task,
    stored_networks,
    tune_and_train_method,
    validation_curves,
)
from headstart.ml.plots import plot_delta_m, plot_validation_curves
from headstart.ml.racing import setting_text
from headstart.ml.reports import multitask_report
from headstart.ml.workers import resolve_workers
from headstart.params import IngestParams, MultitaskParams, RuntimeParams

logger = logging.getLogger(__name__)


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
    if data.kind in ("multi_digits", "digit_presence"):
        splits = (
            overlay_digit_pairs(target_train_pool, data.train_pairs, data.seed),
            overlay_digit_pairs(target_validation_pool, data.validation_pairs, data.seed + 1),
            overlay_digit_pairs(target_test, data.test_pairs, data.seed + 2),
        )
        if data.kind == "digit_presence":
            splits = tuple(digit_presence(pairs) for pairs in splits)
    elif data.kind == "printed_digits_tasks":
        validation, test = stratified_split(source_validation, 0.5, data.seed, "source_validation")
        tasks = data.tasks or list(source_train.labels)
        unknown = [t for t in tasks if t not in source_train.labels]
        if unknown:
            raise ValueError(
                f"multitask.data.tasks: {unknown} not among the printed digits' tasks {list(source_train.labels)}"
            )
        splits = tuple(with_tasks(d, tasks) for d in (source_train, validation, test))
    else:
        loaded = load_manifest(data.path, ingest.image.size, ingest.image.channels, data.image_column)
        splits = random_split(loaded, data.validation_fraction, data.test_fraction, data.seed)
    if multitask.missing_labels:
        hidden = multitask.missing_labels
        splits = (hide_labels(splits[0], hidden.task, hidden.fraction, hidden.seed), *splits[1:])
    return splits


def method_train_config(training, runtime: RuntimeParams, seed: int, setting: dict[str, float]) -> TrainConfig:
    """A method's training at one seed and candidate (module-level: a worker process unpickles it); no bar
    of its own: the grid's one line counts the methods."""
    return TrainConfig.of(training, runtime, seed, setting["lr_scale"]).model_copy(update={"progress": False})


def train_multitask_methods(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask: MultitaskParams,
    runtime: RuntimeParams,
) -> dict[str, StoredModel]:
    """Per method and seed, its network(s): `<method>-seed<s>-all`, or one per task for single-task. The
    methods train at once in the run's workers (headstart.ml.workers), each tuned on validation."""
    classes = outputs_per_task(multitask_train.classes)
    trunk = multitask.trunk_config(source_model["source"].config, int(multitask_train.images.shape[1]))
    source_state = source_model["source"].state if multitask.trunk.init == "source" else None
    pool = workers.shared(resolve_workers(runtime.workers, runtime.device))
    jobs = {
        name: pool.submit(
            tune_and_train_method,
            method.sharing,
            method.weighting_for,
            method.penalty_for,
            trunk,
            classes,
            {"head_depth": multitask.head_depth, "head_width": multitask.head_width},
            (multitask_train.images, multitask_train.labels),
            (multitask_validation.images, multitask_validation.labels),
            multitask.seeds,
            partial(method_train_config, multitask.training, runtime),
            method.grid(multitask.lr_scales),
            multitask.racing_eta,
            source_state,
            Path(runtime.checkpoint_dir),
            name,
        )
        for name, method in multitask.methods.items()
    }
    progress.planned(len(jobs), 1, 1)
    models = {}
    for name, job in jobs.items():
        tuned = job.result()
        progress.done()
        logger.info("Multi-task: %s trained, seeds %s", name, multitask.seeds)
        params = {
            **multitask.methods[name].model_dump(mode="json"),
            "tuned": {part: setting_text(t["setting"]) for part, t in tuned.tuning.items()},
        }
        models.update(stored_networks(name, params, tuned.networks))
    pool.settle()
    return models


def evaluate_multitask_methods(
    multitask_models: dict[str, StoredModel], multitask_test: LabelledImages, runtime: RuntimeParams
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (method, seed, task, test metrics, cost) and one MLflow child run per method × seed."""
    return evaluate_methods(multitask_models, multitask_test, runtime.device)


def compare_multitask_methods(
    results: pd.DataFrame,
    multitask_models: dict[str, StoredModel],
    multitask: MultitaskParams,
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    multitask_test: LabelledImages,
) -> tuple[pd.DataFrame, str, Figure, Figure]:
    """The comparison table (CSV and Markdown, protocol and sign conventions stated), the Δm chart and
    the validation curves."""
    comparison = compare_multitask(
        in_listed_order(results, "method", list(multitask.methods)),
        multitask.baseline,
        cost_reference=multitask.equal_weighting,
    )
    curves = validation_curves(multitask_models)
    markdown = multitask_report(
        comparison,
        curves,
        multitask.data.kind,
        multitask_train,
        multitask_validation,
        multitask_test,
        multitask.seeds,
        multitask.training.epochs,
        multitask.baseline,
        multitask.lr_scales,
        multitask.racing_eta,
    )
    seeds = len(multitask.seeds)
    return (
        comparison,
        markdown,
        plot_delta_m(comparison, multitask.baseline, seeds),
        plot_validation_curves(curves, multitask.baseline, seeds),
    )
