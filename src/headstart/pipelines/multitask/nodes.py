"""Thin nodes over headstart.ml.multitask: build the data set, train every method × seed, evaluate, compare."""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml import workers
from headstart.ml.comparison import budget_clock
from headstart.ml.cost import Knobs, check_limit
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
    MethodRecipe,
    evaluate_methods,
    method_config,
    stored_networks,
    validation_curves,
)
from headstart.ml.multitask.cost import MethodPlan, estimate_methods
from headstart.ml.multitask.looks import run_looks
from headstart.ml.plots import plot_delta_m, plot_validation_curves
from headstart.ml.racing import setting_text
from headstart.ml.reports import multitask_report, with_decisions
from headstart.multitask_params import MultitaskParams
from headstart.params import IngestParams, RuntimeParams

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


def method_recipes(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask: MultitaskParams,
    runtime: RuntimeParams,
) -> dict[str, MethodRecipe]:
    """Each method's training but its seeds, as the workers run it."""
    trunk = multitask.trunk_config(source_model["source"].config, int(multitask_train.images.shape[1]))
    return {
        name: MethodRecipe.of(
            method,
            name,
            trunk,
            {"head_depth": multitask.head_depth, "head_width": multitask.head_width},
            multitask_train,
            multitask_validation,
            partial(method_config, multitask.training, runtime),
            multitask.lr_scales,
            multitask.racing_eta,
            source_model["source"].state if multitask.trunk.init == "source" else None,
            Path(runtime.checkpoint_dir),
        )
        for name, method in multitask.methods.items()
    }


MULTITASK_KNOBS = Knobs(
    seeds="multitask.looks' first look (multitask.seeds)",
    grid="the tuning grids (multitask.lr_scales; a method's tune)",
    strategies="multitask.methods",
    epochs="multitask.training.epochs",
    fewest_seeds=2,
)


def estimate_multitask_cost(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask: MultitaskParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, dict]:
    """The first look's cost before any training (headstart.ml.multitask.cost), printed, and its summary
    for MLflow."""
    recipes = method_recipes(multitask_train, multitask_validation, source_model, multitask, runtime)
    seeds = len(multitask.first_look_seeds)
    plans = [MethodPlan(n, r, seeds, n, required=n == multitask.baseline) for n, r in recipes.items()]
    processes = workers.for_runtime(runtime).count
    found = estimate_methods(plans, MULTITASK_KNOBS, runtime.time_budget_minutes, processes)
    title = f"Cost of the multi-task comparison's first look ({len(plans)} methods, {seeds} seeds)"
    print(found.text(title), flush=True)
    logger.info("%s: %d trainings, about %.1f min", title, found.trainings, found.seconds / 60)
    return found.table, found.summary(title)


def train_multitask_methods(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    multitask_test: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask_cost: dict,
    multitask: MultitaskParams,
    runtime: RuntimeParams,
) -> tuple[dict[str, StoredModel], dict]:
    """Per method and seed, its network(s): `<method>-seed<s>-all`, or one per task for single-task,
    trained in planned looks (headstart.ml.multitask.looks) in the run's workers, each method tuned on
    validation at its first look; and the looks' record. Refused before any training when the first
    look's estimate exceeds the budget; the budget's clock starts here."""
    check_limit(multitask_cost, runtime.time_budget_minutes, MULTITASK_KNOBS)
    recipes = method_recipes(multitask_train, multitask_validation, source_model, multitask, runtime)

    def method_params(name: str, tuning: dict[str, dict]) -> dict:
        tuned = {part: setting_text(t["setting"]) for part, t in tuning.items()}
        return {**multitask.methods[name].model_dump(mode="json"), "tuned": tuned}

    def evaluate(name, networks, tuning):
        return evaluate_methods(
            stored_networks(name, method_params(name, tuning), networks), multitask_test, runtime.device
        )[0]

    pool = workers.for_runtime(runtime)
    looked = run_looks(
        recipes,
        multitask.baseline,
        multitask.seeds,
        multitask.look_design(len(recipes) - 1),
        pool,
        budget_clock(runtime.time_budget_minutes, time.time()),
        evaluate,
    )
    pool.settle()
    models = {}
    for name, networks in looked.networks.items():
        models.update(stored_networks(name, method_params(name, looked.tuning[name]), networks))
    return models, looked.record


def evaluate_multitask_methods(
    multitask_models: dict[str, StoredModel], multitask_test: LabelledImages, runtime: RuntimeParams
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (method, seed, task, test metrics, cost) and one MLflow child run per method × seed."""
    return evaluate_methods(multitask_models, multitask_test, runtime.device)


def compare_multitask_methods(
    results: pd.DataFrame,
    multitask_models: dict[str, StoredModel],
    multitask_looks: dict,
    multitask: MultitaskParams,
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    multitask_test: LabelledImages,
) -> tuple[pd.DataFrame, str, Figure, Figure]:
    """The comparison table (CSV and Markdown, protocol and sign conventions stated), the Δm chart and
    the validation curves."""
    comparison = with_decisions(
        compare_multitask(
            in_listed_order(results, "method", list(multitask.methods)),
            multitask.baseline,
            cost_reference=multitask.equal_weighting,
        ),
        multitask_looks["decisions"],
        key="method",
        gain="delta_p",
        reference="baseline",
    )
    curves = validation_curves(multitask_models)
    markdown = multitask_report(
        comparison,
        multitask_looks,
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
