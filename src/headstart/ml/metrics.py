"""Intervals over seeds and gains against a baseline.

A 95% interval over n seeds is the Student-t interval mean ± t(0.975, n-1)·s/√n (t = 4.303 for
n = 3). The gain over the baseline is paired by seed: the interval of the per-seed differences,
which removes what a seed does to both. Transfer is flagged negative when the gain's whole
interval lies below zero (REFERENCE.md: negative transfer). Gains are also read against the best
baseline: the best, on validation, of the from-scratch network and the classical references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("accuracy", "macro_f1", "nll")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high); the interval is NaN with fewer than two values."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    spread = stats.sem(values)
    if spread == 0:  # scipy answers NaN for a zero scale; every seed agreeing is an interval of width 0
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=spread)
    return mean, float(low), float(high)


def baseline_order(baseline: str, reference_baselines: Sequence[str]) -> list[str]:
    """The baselines, the classical references first: a tie of validation accuracy goes to them, whose
    accuracy is cross-validated over the training + validation labels, rather than to `baseline`,
    whose accuracy is the best epoch's of its best candidate on the few validation labels themselves
    (optimistic: at 1 label per class, 10 images chose among 40 epochs × 3 candidates)."""
    return [*(b for b in reference_baselines if b != baseline), baseline]


def best_baseline(results: pd.DataFrame, baselines: Sequence[str]) -> str:
    """The baseline with the best mean validation accuracy (ties: the first listed). Chosen on
    validation, as a user without the test split would choose: the test split only judges."""
    means = results[results["strategy"].isin(baselines)].groupby("strategy")["validation_accuracy"].mean()
    means = means.round(6)  # a tie is a tie: float32 accuracies and float sums differ in the 8th digit and beyond
    present = [b for b in baselines if b in means.index]
    return max(present, key=lambda b: means[b])


def paired_gain(group: pd.DataFrame, reference: pd.Series, confidence: float) -> tuple[float, float, float]:
    """Accuracy minus the reference's, in points, paired by seed: (mean, low, high)."""
    paired = group.index.intersection(reference.index)
    return t_interval(100 * (group.loc[paired, "accuracy"] - reference[paired]), confidence)


def compare_to_baseline(
    results: pd.DataFrame,
    baseline: str = "scratch",
    confidence: float = 0.95,
    reference_baselines: Sequence[str] = (),
    best: str | None = None,
) -> pd.DataFrame:
    """One row per strategy from rows of (strategy, seed, accuracy, macro_f1, nll, validation_accuracy, ...):
    means with intervals, the accuracy gain over `baseline` and over the best baseline (of `baseline`
    and the `reference_baselines`, chosen by validation accuracy unless `best` names it: the planned
    looks fix it at the first look), in points, paired by seed."""
    if baseline not in set(results["strategy"]):
        raise ValueError(f"the baseline strategy '{baseline}' has no results; run it with the others")
    baselines = baseline_order(baseline, reference_baselines)
    best = best or best_baseline(results, baselines)
    top = str(results.groupby("strategy", sort=False)["accuracy"].mean().idxmax())  # measured, not chosen
    accuracy_of = {
        name: results[results["strategy"] == name].set_index("seed")["accuracy"] for name in (baseline, best, top)
    }
    rows = []
    for strategy, group in results.groupby("strategy", sort=False):
        group = group.set_index("seed")
        mean, low, high = t_interval(group["accuracy"], confidence)
        gain, gain_low, gain_high = paired_gain(group, accuracy_of[baseline], confidence)
        over_best, over_best_low, over_best_high = paired_gain(group, accuracy_of[best], confidence)
        to_top, to_top_low, to_top_high = paired_gain(group, accuracy_of[top], confidence)
        rows.append(
            {
                "strategy": strategy,
                "role": "best baseline" if strategy == best else ("baseline" if strategy in baselines else "transfer"),
                "seeds": len(group),
                "validation_accuracy": group["validation_accuracy"].mean(),
                "accuracy": mean,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "macro_f1": group["macro_f1"].mean(),
                "nll": group["nll"].mean(),
                "gain_points": gain,
                "gain_ci_low": gain_low,
                "gain_ci_high": gain_high,
                "gain_over_best_points": over_best,
                "gain_over_best_ci_low": over_best_low,
                "gain_over_best_ci_high": over_best_high,
                "negative_transfer": bool(gain_high < 0),  # False when the interval is NaN (one seed)
                "below_best_baseline": bool(over_best_high < 0),
                # against the strategy of the best mean test accuracy: the suite's measured best (its audit's
                # hits are the strategies whose interval reaches it)
                "gap_to_top_points": to_top,
                "gap_to_top_ci_low": to_top_low,
                "gap_to_top_ci_high": to_top_high,
                "within_top": bool(strategy == top or to_top_high >= 0),
                "trainable_parameters": int(group["trainable_parameters"].iloc[0]),
                "train_seconds": group["train_seconds"].mean(),
                **({"images_seen": int(group["images_seen"].mean())} if "images_seen" in group else {}),
                **({"grid_images_seen": int(group["grid_images_seen"].iloc[0])} if "grid_images_seen" in group else {}),
                **({"uses": group["uses"].iloc[0]} if "uses" in group else {}),
                **({"tuned": group["tuned"].iloc[0]} if "tuned" in group else {}),
            }
        )
    return pd.DataFrame(rows)


def summarise_over_seeds(results: pd.DataFrame, keys: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per group of `keys`: seeds, mean accuracy with its t-interval (also as text), mean macro-F1 and NLL."""
    rows = []
    for values, group in results.groupby(keys, sort=False):
        mean, low, high = t_interval(group["accuracy"], confidence)
        rows.append(
            {
                **dict(zip(keys, values if isinstance(values, tuple) else (values,))),
                "seeds": len(group),
                "accuracy": mean,
                "accuracy_ci_low": low,
                "accuracy_ci_high": high,
                "accuracy_text": f"{mean:.3f} [{low:.3f}, {high:.3f}]",
                "macro_f1": group["macro_f1"].mean(),
                "nll": group["nll"].mean(),
            }
        )
    return pd.DataFrame(rows)


def evaluation_record(measured: dict, trainable_parameters: int, train_seconds: float) -> dict[str, float]:
    """The numbers every trained model reports: `evaluate`'s metrics on the test split, and its cost."""
    return {
        **{name: measured[name] for name in METRICS},
        "trainable_parameters": trainable_parameters,
        "train_seconds": train_seconds,
    }


def prefix_test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics named for MLflow: accuracy, macro_f1 and nll measured on the test split get a `test_` prefix."""
    return {f"test_{name}" if name in METRICS else name: value for name, value in metrics.items()}


HIGHER_IS_BETTER = ("accuracy", "macro_f1")


def relative_changes(results: pd.DataFrame, method: str, baseline: str) -> dict[int, tuple[float, float]]:
    """Per seed both rows share, `method`'s (Δm, Δp) against `baseline`'s run of that seed (see
    `compare_multitask`): the paired values an interval over seeds, or a planned look, reads."""
    reference = results[results["method"] == baseline].set_index(["seed", "task"])
    indexed = results[results["method"] == method].set_index(["seed", "task"])
    tasks = list(dict.fromkeys(results["task"]))
    changes = {}
    for seed in sorted(set(indexed.index.get_level_values(0)) & set(reference.index.get_level_values(0))):
        per_task = {
            task: [
                100 * (indexed.loc[(seed, task), m] - reference.loc[(seed, task), m]) / reference.loc[(seed, task), m]
                for m in HIGHER_IS_BETTER
            ]
            for task in tasks
        }
        delta_m = -float(np.mean([c for task_changes in per_task.values() for c in task_changes]))
        changes[int(seed)] = (delta_m, float(np.mean([np.mean(c) for c in per_task.values()])))
    return changes


def compare_multitask(
    results: pd.DataFrame, baseline: str, confidence: float = 0.95, cost_reference: str | None = None
) -> pd.DataFrame:
    """One row per method from rows of (method, seed, task, accuracy, macro_f1, parameters, ...).

    Δm (Maninis et al., CVPR 2019) = (1/K) Σ_k (−1)^{l_k} (M_m,k − M_b,k) / M_b,k · 100 over every
    task's accuracy and macro-F1 (l_k = 1: higher is better), so positive = worse than `baseline`.
    Δp (LibMTL): each task's mean relative change (positive = better), averaged over tasks.
    Both per seed, paired with the baseline's run of that seed, then a t-interval over seeds.
    `step_cost`: a method's seconds per epoch over `cost_reference`'s (equal weighting's, say)."""
    tasks = list(dict.fromkeys(results["task"]))
    rows = []
    for method, group in results.groupby("method", sort=False):
        changes = relative_changes(results, method, baseline)
        delta_m = [c[0] for c in changes.values()]
        delta_p = [c[1] for c in changes.values()]
        row: dict = {"method": method, "seeds": group["seed"].nunique()}
        for task in tasks:
            mean, low, high = t_interval(group[group["task"] == task]["accuracy"], confidence)
            row.update({f"{task}_accuracy": mean, f"{task}_ci_low": low, f"{task}_ci_high": high})
        for name, values in (("delta_m", delta_m), ("delta_p", delta_p)):
            mean, low, high = t_interval(values, confidence)
            row.update({name: mean, f"{name}_ci_low": low, f"{name}_ci_high": high})
        per_seed = group.drop_duplicates("seed")
        row.update(
            {
                "parameters": int(per_seed["parameters"].iloc[0]),
                "train_seconds": per_seed["train_seconds"].mean(),
                "inference_seconds": per_seed["inference_seconds"].mean(),
                **({"epoch_seconds": per_seed["epoch_seconds"].mean()} if "epoch_seconds" in per_seed else {}),
                **({"tuned": "; ".join(dict.fromkeys(group["tuned"].astype(str)))} if "tuned" in group else {}),
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    if cost_reference is not None and "epoch_seconds" in table and cost_reference in set(table["method"]):
        per_epoch = table.set_index("method")["epoch_seconds"]
        table["step_cost"] = (table["epoch_seconds"] / per_epoch[cost_reference]).round(2)
    return table


def in_listed_order(results: pd.DataFrame, column: str, names: Sequence[str]) -> pd.DataFrame:
    """`results` with its rows sorted by `column` in the order `names` lists them (stable otherwise)."""
    order = {name: i for i, name in enumerate(names)}
    return results.sort_values(column, key=lambda values: values.map(order), kind="stable")


# Calibration and selective prediction (headstart.ml.calibration): per seed, then intervals over seeds.
CALIBRATION_METRICS = ("ece", "ece_calibrated", "nll_calibrated", "aurc")
CALIBRATION_COLUMNS = ("ece", "ece_calibrated", "nll", "nll_calibrated", "aurc")  # lower is better, each


def with_calibration(comparison: pd.DataFrame, results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """`comparison` with, in place of its mean NLL, each row's ECE and NLL before and after temperature
    scaling and its AURC: means over seeds with the same t-interval as accuracy's. A row whose seeds
    lack them (evaluated before they were measured) gets NaN; without any, the comparison is unchanged."""
    present = [name for name in CALIBRATION_COLUMNS if name in results]
    if not set(CALIBRATION_METRICS) & set(present):
        return comparison
    columns: dict[str, dict[str, float]] = {}
    for strategy, group in results.groupby("strategy", sort=False):
        for name in present:
            values = group[name].dropna()
            mean, low, high = t_interval(values, confidence) if len(values) else (math.nan,) * 3
            for column, value in ((name, mean), (f"{name}_ci_low", low), (f"{name}_ci_high", high)):
                columns.setdefault(column, {})[strategy] = value
    table = comparison.drop(columns=[c for c in columns if c in comparison])
    at = list(comparison.columns).index("nll") if "nll" in comparison else len(table.columns)
    for offset, (column, values) in enumerate(columns.items()):
        table.insert(at + offset, column, table["strategy"].map(values))
    return table


def selective_prediction_table(
    selective: Sequence[tuple[str, Sequence[float]]], coverages: Sequence[float], confidence: float = 0.95
) -> pd.DataFrame:
    """Accuracy against coverage per strategy, from (strategy, one seed's accuracy at each coverage)
    pairs: the mean over seeds with its t-interval at each coverage (answering the most confident first)."""
    rows = []
    by_strategy: dict[str, list[Sequence[float]]] = {}
    for strategy, accuracies in selective:
        by_strategy.setdefault(strategy, []).append(accuracies)
    for strategy, seeds in by_strategy.items():
        for index, coverage in enumerate(coverages):
            mean, low, high = t_interval([accuracies[index] for accuracies in seeds], confidence)
            rows.append(
                {
                    "strategy": strategy,
                    "coverage": coverage,
                    "seeds": len(seeds),
                    "accuracy": mean,
                    "accuracy_ci_low": low,
                    "accuracy_ci_high": high,
                }
            )
    return pd.DataFrame(
        rows, columns=["strategy", "coverage", "seeds", "accuracy", "accuracy_ci_low", "accuracy_ci_high"]
    )
