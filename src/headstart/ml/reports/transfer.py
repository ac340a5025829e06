"""The transfer comparison's report: its protocol, its verdict in words (row by row as the planned looks
decided it, or by where each paired gain's interval lies) and its line on calibration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.data.images import LabelledImages
from headstart.ml.reports.common import (
    SEED_VARIANCE,
    SELECTION,
    classical_tuning_text,
    interval,
    labels_used,
    more_seeds_hint,
    racing_text,
    seeds_text,
    split_sizes,
    tuning_grid_text,
    verdict_sentences,
)


def transfer_protocol(
    splits: Mapping[str, LabelledImages],
    grids: Mapping[str, Sequence[Mapping[str, float]]],
    seeds: Sequence[int],
    confidence: float,
    baseline: str,
    reference_baselines: Sequence[str],
    best: str,
    eta: int | None = None,
    rungs: Mapping[str, Sequence[Mapping]] | None = None,
    classical_folds: Mapping[str, int] | None = None,
    looks: Mapping | None = None,
) -> list[str]:
    return [
        "## Protocol",
        "",
        f"- {split_sizes(splits)}",
        f"- {labels_used(splits['train'], splits['validation'])}",
        f"- {looks['design'] if looks else interval(confidence, seeds)} {SEED_VARIANCE}",
        f"- {tuning_grid_text(grids)}",
        f"- {racing_text(eta, rungs)}",
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


def looks_verdict(comparison: pd.DataFrame, looks: Mapping, labels: str, baseline: str) -> str:
    """The comparison in words, row by row as the planned looks decided it: better, worse, equivalent
    within the margin, or open (and why), each with its gain, interval at its look's level and n."""
    best = comparison[comparison["verdict"] == "best baseline"].iloc[0]
    sentences = [
        f"With {labels}, the best baseline (chosen on validation at the first look) is `{best['strategy']}`, "
        f"test accuracy {best['accuracy']:.3f} (n = {best['seeds']}); each row's gain over it is in points of "
        "test accuracy, paired by seed, with its interval at the level of the look that decided it."
    ]
    sentences += verdict_sentences(comparison, "strategy", "gain_over_best_points", "")
    if looks.get("not_applicable"):
        sentences.append(
            "Not applicable here, left out before any training: "
            + ", ".join(f"`{name}` ({why})" for name, why in looks["not_applicable"].items())
            + "."
        )
    cut = [line for look in looks["looks"] for line in look.get("cut", [])]
    if cut:
        sentences.append(f"Not run for lack of time: {'; '.join(cut)}.")
    sentences += more_seeds_hint(comparison, "`transfer.seeds`")
    sentences.append(
        f"The looks trained {looks['seeds_if_fixed'] - looks['seeds_saved']} row-seeds of the "
        f"{looks['seeds_if_fixed']} a fixed design of {looks['seeds_listed']} seeds would (saved "
        f"{looks['seeds_saved']})."
    )
    return " ".join(sentences)


def transfer_report(comparison: pd.DataFrame, verdict_text: str, protocol: Sequence[str]) -> str:
    """The transfer comparison in Markdown: its verdict in words, its protocol, then the table."""
    return "\n".join(
        [
            "# Transfer strategies against the from-scratch and classical baselines",
            "",
            "## Verdict",
            "",
            verdict_text,
            "",
            *protocol,
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def calibration_text(bins: int, coverages: Sequence[float]) -> str:
    """The protocol's line on the calibration and selective-prediction columns."""
    return (
        "Calibration: each model's temperature T (Guo et al., ICML 2017) is fitted on the validation labels by "
        "LBFGS on the NLL of logits/T; the network's argmax, hence accuracy, is unchanged. `ece` / `ece_calibrated`: "
        f"the standard binned top-label expected calibration error over {bins} equal-width bins of the maximum "
        "probability, Σ_b (n_b/n)·|acc_b − conf_b|, on test, before / after; `nll` / `nll_calibrated` the same for "
        "the test NLL. A k-nearest-neighbours reference's logits are its smoothed log vote shares, so its T raises "
        "the vote shares to the power 1/T. The classical references are refitted on the training + validation "
        "labels: when they then answer every validation image right there is no evidence for a T, and T = 1 "
        "(their two ECEs equal). `aurc`: the area under the risk-coverage curve (Geifman & El-Yaniv, "
        "NeurIPS 2017) of the calibrated confidence, the mean error of the i most confident answers over i = 1..n "
        f"(ties in confidence spread evenly); lower is better. Accuracy at coverages {coverages[0]:.0%} to "
        f"{coverages[-1]:.0%} is in `transfer_selective_prediction.csv`. Each with its t-interval over seeds."
    )
