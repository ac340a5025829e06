"""The learning curve's report: a verdict per label budget (the transfer comparison's, at that budget),
its protocol, the curve and the labels transfer saves against the best baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.metrics import compare_to_baseline
from headstart.ml.reports.common import (
    SELECTION,
    classical_tuning_text,
    interval,
    labels_phrase,
    racing_text,
    tuning_grid_text,
)
from headstart.ml.reports.transfer import verdict


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


def learning_curve_report(
    verdicts: Sequence[str],
    budgets: Sequence,
    sizes: Mapping[str, int],
    seeds: Sequence[int],
    confidence: float,
    grids: Mapping[str, Sequence[Mapping[str, float]]],
    classical: Mapping[str, int],
    baselines: Sequence[str],
    eta: int | None,
    curve: pd.DataFrame,
    saved: pd.DataFrame,
) -> str:
    """The learning curve in Markdown: its verdict per budget, protocol, the curve and labels saved."""
    return "\n".join(
        [
            "# Learning curve: transfer against the best baseline at every label budget",
            "",
            "## Verdict",
            "",
            *verdicts,
            "",
            "## Protocol",
            "",
            f"- Budgets: k = {', '.join(map(str, budgets))} training labels per class, drawn from the target train "
            f"pool ({sizes['train pool']} images), plus the validation labels drawn from the validation split "
            f"({sizes['validation']} images); labels_used = training + validation labels per class, the x-axis of "
            "the curve and the unit of labels saved.",
            f"- Test split: {sizes['test']} images, used for the reported test accuracy only.",
            f"- {interval(confidence, seeds)} Seed s draws the labels (nested over k), tunes and trains.",
            f"- {tuning_grid_text(grids)} Tuned per budget and seed, on that draw's labels.",
            f"- {racing_text(eta)}",
            *([f"- {classical_tuning_text(classical)}"] if classical else []),
            f"- {SELECTION}",
            f"- Baselines: {', '.join(f'`{b}`' for b in baselines)}. At each budget the best baseline is the one with "
            "the best mean validation accuracy; labels saved are read off that best-baseline curve: the fewest labels "
            "used at which it reaches the strategy's mean test accuracy (negative: it needs fewer); its interval is a "
            f"{round(confidence * 100)}% percentile bootstrap over the n = {len(seeds)} seeds (1,000 resamples, "
            "paired across strategies).",
            "",
            "## Mean test accuracy [interval] by labels per class (labels used per class in brackets)",
            "",
            curve.to_markdown(index=False),
            "",
            "## Labels saved against the best baseline",
            "",
            saved.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
