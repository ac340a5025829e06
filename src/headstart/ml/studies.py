"""Data-efficiency and layer studies: many small trainings on one split, each tested alike.

- learning curve: test accuracy against the label budget k (and the labels it really uses, training
  plus validation); `labels_saved` reads off, for a transfer strategy at k, the fewest labels used
  at which the best baseline (chosen per budget on validation) does as well.
- layer sweep (Yosinski et al. 2014): for n = 0..N blocks, three arms on one budget: copied and
  frozen, copied and fine-tuned, and a control whose first n blocks are random and frozen.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd
import torch

from headstart.ml.config import Settings, TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_label_budget, labels_used_per_class
from headstart.ml.metrics import evaluation_record, summarise_over_seeds
from headstart.ml.models.stored import StoredModel
from headstart.ml.run_records import advice_audit_run, layer_sweep_run
from headstart.ml.strategies import (
    StrategyConfig,
    StrategyResult,
    TargetTask,
    TunedStrategy,
    train_strategy,
    train_tuned,
)
from headstart.ml.training import evaluate, resolve_device
from headstart.ml.transfer import TransferSpec
from headstart.ml.workers import Workers, shared

logger = logging.getLogger(__name__)


def parallel_map(function: Callable, items: Sequence, workers: int | Workers) -> list:
    """`function` over `items` in order, in the run's workers (a pool, or that many processes of one
    thread each: headstart.ml.workers) unless one local worker would run them all here. Every training
    seeds itself, so where it runs does not change what it draws."""
    remote = not isinstance(workers, int) and workers.remote
    count = workers if isinstance(workers, int) else workers.count
    if not remote and (count <= 1 or len(items) <= 1):
        return [function(item) for item in items]
    return (shared(workers) if isinstance(workers, int) else workers).map(function, items)


def test_metrics(result: StrategyResult, test: tuple[torch.Tensor, torch.Tensor], device: str) -> dict[str, float]:
    """The kept model's test metrics and cost, with the validation accuracy that kept it."""
    measured = evaluate(result.model.to(resolve_device(device)), *test)
    result.model.cpu()
    record = evaluation_record(measured, result.report.trainable_parameters, result.train_seconds)
    return {**record, "validation_accuracy": result.validation_accuracy}


def train_and_test(
    task: TargetTask, test: tuple[torch.Tensor, torch.Tensor], config: StrategyConfig
) -> tuple[StrategyResult, dict[str, float]]:
    """One untuned point of a study: train as the strategy says, then test the kept model."""
    result = train_strategy(task, config)
    return result, test_metrics(result, test, config.training.device)


def tune_and_test(
    task: TargetTask,
    test: tuple[torch.Tensor, torch.Tensor],
    grid: list[dict[str, float]],
    seed: int,
    configure: Callable[[dict[str, float], int], StrategyConfig],
    eta: int | None = None,
) -> tuple[TunedStrategy, dict[str, float]]:
    """One tuned point of a study: the grid tried (raced, with `eta`) on validation, then the kept
    model's test metrics."""
    kept = train_tuned(task, grid, [seed], configure, eta=eta)
    return kept, test_metrics(kept.results[seed], test, configure(kept.setting, seed).training.device)


class SweepArm(Settings):
    """One arm of the layer sweep: whether its first n blocks are copied from the source, and frozen."""

    from_source: bool  # the first n blocks copied from the source (else random)
    frozen: bool


def layer_sweep_spec(arm: SweepArm, blocks: int) -> TransferSpec:
    """The transfer of one arm at n = `blocks`; the rest of the body always trains from random."""
    return TransferSpec(copy_blocks=blocks if arm.from_source else 0, freeze_blocks=blocks if arm.frozen else 0)


def layer_sweep_config(base: StrategyConfig, arm: SweepArm, blocks: int) -> StrategyConfig:
    return base.model_copy(update={"procedure": "fit", "spec": layer_sweep_spec(arm, blocks)})


def layer_sweep(
    source: StoredModel,
    pool: LabelledImages,
    validation_pool: LabelledImages,
    test: LabelledImages,
    blocks: Sequence[int],
    arms: Mapping[str, SweepArm],
    labels_per_class: int | str,
    validation_labels_per_class: int | str,
    seeds: Sequence[int],
    training_for: Callable[[int], TrainConfig],
    training_settings: Mapping,
    workers: int | Workers = 1,
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (arm, blocks, seed, labels_used, test metrics) and one child-run record per trained row:
    per seed its own draw of `labels_per_class` from `pool` (and of the validation labels), per n in
    `blocks` each arm, every trained point in the run's `workers` (they are independent). At n = 0 the
    arms are the same model (nothing copied or frozen): it is trained once and reported for each.
    `training_settings` are logged as the runs' params."""
    num_classes = len(pool.primary_classes)
    points, trained = [], []
    for seed in seeds:
        train_labels, validation_labels = draw_label_budget(
            pool, validation_pool, labels_per_class, validation_labels_per_class, seed
        )
        task = TargetTask(
            source.config, source.state, num_classes, train_labels.primary_pairs(), validation_labels.primary_pairs()
        )
        base = StrategyConfig(procedure="fit", spec=TransferSpec(), training=training_for(seed))
        used = labels_used_per_class(train_labels, validation_labels)
        for n in blocks:
            for position, (arm, settings) in enumerate(arms.items()):
                point = {"arm": arm, "blocks": n, "seed": seed, "labels_used": used}
                if n > 0 or position == 0:  # at n = 0 the later arms report the first arm's training
                    trained.append((point, task, layer_sweep_config(base, settings, n)))
                points.append((point, len(trained) - 1))
    sweep_point = partial(_sweep_point, test.primary_pairs(), labels_per_class, dict(training_settings))
    measured = parallel_map(sweep_point, trained, workers)
    rows = [{**point, **measured[training][0]} for point, training in points]
    return pd.DataFrame(rows), [run for _, run in measured]


def _sweep_point(
    test: tuple[torch.Tensor, torch.Tensor],
    labels_per_class: int | str,
    training_settings: dict,
    trained: tuple[dict, TargetTask, StrategyConfig],
) -> tuple[dict[str, float], dict]:
    """One trained point of the layer sweep: its test metrics and its child-run record."""
    point, task, config = trained
    logger.info("Layer sweep: %s, %d blocks, seed %d", point["arm"], point["blocks"], point["seed"])
    result, metrics = train_and_test(task, test, config)
    return metrics, layer_sweep_run(point, labels_per_class, training_settings, result.history, metrics)


def measure_candidates(
    candidates: Mapping[str, StoredModel],
    train: LabelledImages,
    validation: LabelledImages,
    test: LabelledImages,
    measured: Mapping[str, tuple[str, list[dict[str, float]], Callable[[dict[str, float], int], StrategyConfig]]],
    seeds: list[int],
    device: str,
) -> tuple[pd.DataFrame, list[dict]]:
    """Each candidate source trained the ways `measured` names (role → strategy name, its tuning grid and
    its configuration per setting and seed), tuned on validation; the test metrics per seed as rows of
    (candidate, measured, strategy, seed, metrics, tuned, tuning_seconds) and as child-run records."""
    train_pairs, validation_pairs, test_pairs = train.primary_pairs(), validation.primary_pairs(), test.primary_pairs()
    num_classes = len(train.primary_classes)
    rows, runs = [], []
    for candidate, stored in candidates.items():
        task = TargetTask(stored.config, stored.state, num_classes, train_pairs, validation_pairs)
        for role, (strategy, grid, configure) in measured.items():
            logger.info("Audit: %s on candidate %s", strategy, candidate)
            started = time.perf_counter()
            tuned = train_tuned(task, grid, seeds, configure)
            seconds = time.perf_counter() - started
            for seed, result in tuned.results.items():
                metrics = test_metrics(result, test_pairs, device)
                point = {"candidate": candidate, "measured": role, "strategy": strategy, "seed": seed}
                rows.append({**point, **metrics, "tuned": tuned.setting_text(), "tuning_seconds": seconds})
                runs.append(advice_audit_run(point, tuned.setting_text(), result.history, metrics))
    return pd.DataFrame(rows), runs


def best_baseline_curve(curve: pd.DataFrame, baselines: list[str]) -> pd.DataFrame:
    """Per budget, the baseline with the best mean validation accuracy and its mean test accuracy:
    the curve a user who tried every baseline (and never looked at the test split) would be on."""
    means = (
        curve[curve["strategy"].isin(baselines)]
        .groupby(["labels_per_class", "strategy"], as_index=False, sort=False)[
            ["k", "labels_used", "validation_accuracy", "accuracy"]
        ]
        .mean()
    )
    means["validation_accuracy"] = means["validation_accuracy"].round(6)  # equal means tie (float32, float sums)
    order = {name: i for i, name in enumerate(baselines)}  # ties: the first listed
    means["order"] = -means["strategy"].map(order)
    best = means.sort_values(["validation_accuracy", "order"]).groupby("labels_per_class", sort=False).tail(1)
    return best.drop(columns="order").sort_values("labels_used").reset_index(drop=True)


def labels_saved(curve: pd.DataFrame, baselines: list[str]) -> pd.DataFrame:
    """For each transfer strategy and budget: the fewest labels used (training + validation, per class)
    at which the best-baseline curve reaches the strategy's mean test accuracy, and the labels per
    class that saves (or "not reached").

    `curve` has rows of (strategy, labels_per_class, k, labels_used, seed, validation_accuracy, accuracy)."""
    base = best_baseline_curve(curve, baselines)
    means = curve.groupby(["strategy", "labels_per_class"], as_index=False, sort=False)[
        ["k", "labels_used", "accuracy"]
    ].mean()
    rows = []
    for _, point in means[~means["strategy"].isin(baselines)].iterrows():
        reached = base[base["accuracy"] >= point["accuracy"]]
        matched = reached.iloc[0] if len(reached) else None
        same_budget = base[base["labels_per_class"] == point["labels_per_class"]].iloc[0]
        rows.append(
            {
                "strategy": point["strategy"],
                "labels_per_class": point["labels_per_class"],
                "labels_used": round(point["labels_used"], 1),
                "accuracy": point["accuracy"],
                "best_baseline_here": same_budget["strategy"],
                "best_baseline_accuracy_here": same_budget["accuracy"],
                "best_baseline_matches_at_labels_used": round(matched["labels_used"], 1)
                if matched is not None
                else "not reached",
                "matched_by": matched["strategy"] if matched is not None else "",
                "labels_saved_per_class": (
                    round(matched["labels_used"] - point["labels_used"], 1) if matched is not None else "not reached"
                ),
            }
        )
    return pd.DataFrame(rows)


def labels_saved_interval(
    curve: pd.DataFrame, baselines: list[str], confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """A percentile bootstrap interval on labels saved: the seeds resampled with replacement (the
    same draw for every strategy and baseline, so the curves stay paired), labels saved read off
    each resample as `labels_saved` reads it; "not reached" counts as more than any budget saves."""
    seeds = np.array(sorted(curve["seed"].unique()))
    generator = np.random.default_rng(seed)
    by_seed = {s: curve[curve["seed"] == s] for s in seeds}
    draws: dict[tuple[str, object], list[float]] = {}
    for _ in range(resamples):
        drawn = generator.choice(seeds, size=len(seeds), replace=True)
        resampled = pd.concat([by_seed[s] for s in drawn], ignore_index=True)
        for _, row in labels_saved(resampled, baselines).iterrows():
            value = row["labels_saved_per_class"]
            draws.setdefault((row["strategy"], row["labels_per_class"]), []).append(
                math.inf if isinstance(value, str) else float(value)
            )
    tail = (1 - confidence) / 2
    rows = []
    for (strategy, budget), values in draws.items():
        low, high = np.quantile(np.array(values), [tail, 1 - tail], method="inverted_cdf")
        text = (
            f"[{low:+.1f}, {high:+.1f}]"
            if math.isfinite(high)
            else (f"[{low:+.1f}, not reached]" if math.isfinite(low) else "not reached")
        )
        rows.append(
            {
                "strategy": strategy,
                "labels_per_class": budget,
                f"labels_saved_{round(confidence * 100)}pct_bootstrap_n{len(seeds)}": text,
            }
        )
    return pd.DataFrame(rows)


def curve_table(curve: pd.DataFrame, baselines: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Mean test accuracy [interval] per strategy (rows) and budget (columns, with labels used per
    class), and a last row naming the best baseline of each budget (chosen on validation)."""
    table = summarise_over_seeds(curve, ["strategy", "labels_per_class"], confidence)
    used = curve.groupby("labels_per_class", sort=False)["labels_used"].mean()
    columns = {budget: f"k={budget} ({used[budget]:.0f})" for budget in used.index}
    table["budget"] = table["labels_per_class"].map(columns)
    pivot = table.pivot(index="strategy", columns="budget", values="accuracy_text")
    pivot = pivot.loc[list(dict.fromkeys(curve["strategy"])), list(columns.values())]
    best = best_baseline_curve(curve, baselines).set_index("labels_per_class")
    pivot.loc["best baseline (on validation)"] = [
        f"{best.loc[b, 'strategy']} {best.loc[b, 'accuracy']:.3f}" for b in columns
    ]
    return pivot.reset_index()
