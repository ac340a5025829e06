"""The protocol every report states in a few lines: splits and sizes, labels used, seeds, tuning,
selection, interval and n, sign conventions. A table without them cannot be checked by a sceptic.
And the verdict every report opens with, in words, computed from its comparison table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import compare_to_baseline

SELECTION = (
    "Selection: within a training, the kept epoch is the one with the best validation accuracy (ties: lower "
    "validation loss), early stopping waits `min_epochs`; across a tuning grid, the candidate with the best mean "
    "validation accuracy over seeds is kept. The test split is used for nothing but the reported test metrics."
)


def split_sizes(splits: Mapping[str, LabelledImages]) -> str:
    parts = []
    for name, data in splits.items():
        counts = list(data.class_counts().values())
        per_class = f"{counts[0]}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        parts.append(f"{name} {len(data)} images ({per_class} per class)")
    return "Splits: " + ", ".join(parts) + "."


def labels_used(train: LabelledImages, validation: LabelledImages) -> str:
    classes = len(train.primary_classes)
    return (
        f"Labels used per class: {len(train) / classes:g} to train + {len(validation) / classes:g} to validate = "
        f"{(len(train) + len(validation)) / classes:g} ({len(train) + len(validation)} labelled images in all)."
    )


def interval(confidence: float, seeds: Sequence[int]) -> str:
    return (
        f"Intervals: {round(confidence * 100)}% Student-t over n = {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
        "an interval that leaves the metric's range is reported as computed and drawn clipped."
    )


def tuning_grid_text(grids: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """'scratch: lr_scale ∈ {0.3, 1, 3}; pixels_knn: neighbours ∈ {1, 3}' from each strategy's grid."""
    parts = []
    for strategy, grid in grids.items():
        names = list(dict.fromkeys(name for setting in grid for name in setting))
        tried = {name: dict.fromkeys(f"{setting[name]:g}" for setting in grid) for name in names}  # each once
        values = "; ".join(f"{name} ∈ {{{', '.join(tried[name])}}}" for name in names)
        parts.append(f"{strategy}: {values}")
    return (
        "Tuning (each strategy alike, over its whole grid and every seed, never on the test split; lr_scale "
        "multiplies the learning rates, or C for a linear classifier): " + "; ".join(parts) + "."
    )


def transfer_protocol(
    splits: Mapping[str, LabelledImages],
    grids: Mapping[str, Sequence[Mapping[str, float]]],
    seeds: Sequence[int],
    confidence: float,
    baseline: str,
    reference_baselines: Sequence[str],
    best: str,
    classical_folds: Mapping[str, int] | None = None,
) -> list[str]:
    return [
        "## Protocol",
        "",
        f"- {split_sizes(splits)}",
        f"- {labels_used(splits['train'], splits['validation'])}",
        f"- {interval(confidence, seeds)}",
        f"- {tuning_grid_text(grids)}",
        *([f"- {classical_tuning_text(classical_folds)}"] if classical_folds else []),
        f"- {SELECTION}",
        f"- Baselines: `{baseline}` (the same architecture from random initialisation, trained by the same code) and "
        f"{', '.join(f'`{b}`' for b in reference_baselines)} (scikit-learn classifiers on the raw pixels), on "
        f"the same labels and seeds. Best baseline, by mean validation accuracy: `{best}`.",
        f"- Signs: gain_points = test accuracy minus `{baseline}`'s, in percentage points, paired by seed; "
        "gain_over_best_points the same against the best baseline; positive = better than the baseline. "
        f"negative_transfer: the whole gain interval lies below zero (against `{baseline}`); below_best_baseline: "
        "the same against the best baseline.",
    ]


def labels_phrase(train_per_class: float, validation_per_class: float, refitted: Sequence[str] = ()) -> str:
    """The labels a verdict was reached with, validation included (it is part of the budget), and
    the classical references that are fitted on all of them (`cross_validate_classical`)."""
    total = train_per_class + validation_per_class
    fitted_on_all = f"; {', '.join(f'`{name}`' for name in refitted)} fitted on all {total:g}" if refitted else ""
    return (
        f"{train_per_class:g} label{'' if train_per_class == 1 else 's'} per class to train + "
        f"{validation_per_class:g} to validate ({total:g} per class in the budget{fitted_on_all})"
    )


def classical_tuning_text(folds: Mapping[str, int]) -> str:
    """How the classical references (their cross-validation folds by name) choose and fit."""
    if not folds:
        return ""
    names = ", ".join(f"`{name}` ({count}-fold)" for name, count in folds.items())
    return (
        f"Classical references {names}: scikit-learn on the raw pixels as they are, in [0, 1], not standardised; "
        "each candidate of the grid is scored by stratified cross-validation over the training + validation labels "
        "(leave-one-out when a class has fewer labels than folds), the best mean out-of-fold accuracy over seeds is "
        "kept (ties: lower NLL) and the model is refitted on all those labels; their validation_accuracy is that "
        "cross-validated accuracy. Every other strategy trains on the training labels and chooses on the validation "
        "labels."
    )


def interval_groups(table: pd.DataFrame, gain: str, interval: str) -> dict[str, pd.DataFrame]:
    """Rows by where the interval of their `gain` (columns `interval`_ci_low and _ci_high) lies:
    above zero, below zero, across it (zero included), or nowhere (one seed: no interval)."""
    low, high = table[f"{interval}_ci_low"], table[f"{interval}_ci_high"]
    return {
        "better": table[low > 0].sort_values(gain, ascending=False),
        "worse": table[high < 0].sort_values(gain),
        "indistinguishable": table[(low <= 0) & (high >= 0)],
        "no interval": table[low.isna() | high.isna()],
    }


def listing(rows: pd.DataFrame, name: str, gain: str, interval: str, unit: str) -> str:
    """'`a` (+5.2 points [+1.1, +9.3]), `b` (…)': each row's gain and its interval."""
    parts = []
    for _, row in rows.iterrows():
        low, high = row[f"{interval}_ci_low"], row[f"{interval}_ci_high"]
        bounds = "" if math.isnan(low) else f" [{low:+.1f}, {high:+.1f}]"
        parts.append(f"`{row[name]}` ({row[gain]:+.1f} {unit}{bounds})")
    return ", ".join(parts)


def seeds_text(table: pd.DataFrame) -> str:
    counts = sorted(set(table["seeds"]))
    return f"n = {counts[0]} seeds" if len(counts) == 1 else f"n = {', '.join(map(str, counts))} seeds by row"


def verdict(comparison: pd.DataFrame, labels: str, confidence: float, baseline: str = "scratch") -> str:
    """The transfer comparison (`compare_to_baseline`'s table) in plain words: which strategies beat the
    best baseline with the interval of their paired gain clear of zero, and by how much; which fall
    below it with the interval clear of zero (negative transfer); which cannot be told from it."""
    best = comparison[comparison["role"] == "best baseline"].iloc[0]
    strategies = comparison[comparison["role"] == "transfer"]
    sentences = [
        f"With {labels}, the best baseline (chosen on validation) is `{best['strategy']}`, test accuracy "
        f"{best['accuracy']:.3f}; gains are in points of test accuracy against it, paired by seed, with their "
        f"{round(confidence * 100)}% interval ({seeds_text(comparison)})."
    ]
    if strategies.empty:
        return " ".join([*sentences, "No transfer strategy was compared."])
    groups = interval_groups(strategies, "gain_over_best_points", "gain_over_best")
    for group, found, none in (
        (
            "better",
            "Better than it, the interval clear of zero: {}.",
            "No strategy beats it with an interval clear of zero.",
        ),
        (
            "worse",
            "Worse than it, the interval clear below zero (negative transfer): {}.",
            "None is below it with an interval clear of zero.",
        ),
        ("indistinguishable", "Indistinguishable from it (the interval spans zero): {}.", ""),
        ("no interval", "Without an interval (one seed): {}.", ""),
    ):
        rows = groups[group]
        sentences.append(
            found.format(listing(rows, "strategy", "gain_over_best_points", "gain_over_best", "points"))
            if len(rows)
            else none
        )
    if best["strategy"] != baseline:
        below = strategies[strategies["negative_transfer"]]["strategy"]
        names = ", ".join(f"`{name}`" for name in below) or "none"
        sentences.append(
            f"Against `{baseline}` alone (the table's negative_transfer), the interval lies below zero for {names}."
        )
    return " ".join(sentence for sentence in sentences if sentence)


def learning_curve_verdict(
    curve: pd.DataFrame,
    baseline: str,
    reference_baselines: Sequence[str],
    confidence: float,
    refitted: Sequence[str] = (),
) -> list[str]:
    """One verdict per budget (`verdict`), from the curve's rows of (strategy, labels_per_class, k,
    labels_used, seed, accuracy, ...): the strategies against that budget's best baseline, paired by
    seed (a seed draws the same labels for every strategy)."""
    lines = []
    for budget, points in sorted(
        curve.groupby("labels_per_class", sort=False), key=lambda p: p[1]["labels_used"].mean()
    ):
        k = points["k"].mean()
        comparison = compare_to_baseline(points, baseline, confidence, reference_baselines)
        labels = labels_phrase(k, points["labels_used"].mean() - k, refitted)
        lines.append(f"- **k = {budget}**: {verdict(comparison, labels, confidence, baseline)}")
    return lines


def multitask_verdict(comparison: pd.DataFrame, baseline: str, labels: str, confidence: float) -> str:
    """The multi-task comparison (`compare_multitask`'s table) in plain words, by Δp against the
    single-task networks (positive = better): better, worse (negative transfer between the tasks), or
    indistinguishable, each with its interval."""
    methods = comparison[comparison["method"] != baseline]
    sentences = [
        f"With {labels}, against `{baseline}` (one network per task): Δp in % (positive = better; Δm has the "
        f"opposite sign), paired by seed, with its {round(confidence * 100)}% interval ({seeds_text(comparison)})."
    ]
    groups = interval_groups(methods, "delta_p", "delta_p")
    for group, found, none in (
        ("better", "Better, the interval clear of zero: {}.", "No method beats it with an interval clear of zero."),
        (
            "worse",
            "Worse, the interval clear below zero (negative transfer between the tasks): {}.",
            "None is below it with an interval clear of zero.",
        ),
        ("indistinguishable", "Indistinguishable from it (the interval spans zero): {}.", ""),
        ("no interval", "Without an interval (one seed): {}.", ""),
    ):
        rows = groups[group]
        sentences.append(found.format(listing(rows, "method", "delta_p", "delta_p", "%")) if len(rows) else none)
    return " ".join(sentence for sentence in sentences if sentence)
