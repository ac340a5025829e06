"""The advice's audit, after training: how well each transferability score's ranking agreed with the
accuracy training then measured (across candidate sources and across blocks), whether the advised
strategy and depth were the measured best, and what the advice and its audit cost."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from headstart.ml.advice import HEAD_SCORES, SCORES


def rank_correlations(table: pd.DataFrame, scores: list[str], measured: str) -> list[dict]:
    """Kendall's τ (tau-b, scipy) between each score and the measured accuracy over the rows, with
    its p-value and the n it rests on. Rows with a missing score are left out of that score's n."""
    rows = []
    for score in scores:
        paired = table[[score, measured]].dropna()
        tau, p_value = kendalltau(paired[score], paired[measured]) if len(paired) >= 2 else (np.nan, np.nan)
        rows.append({"score": score, "tau": float(tau), "p_value": float(p_value), "n": len(paired)})
    return rows


def within_best(summary: pd.DataFrame, key: str, advised) -> dict:
    """Was the advised row the measured best (highest mean test accuracy), or is its mean inside the
    best's interval? `summary` holds one row per option with accuracy and accuracy_ci_low/high."""
    best = summary.loc[summary["accuracy"].idxmax()]
    chosen = summary[summary[key] == advised]
    if chosen.empty:
        return {"advised": advised, "measured": False, "best": best[key], "best_accuracy": float(best["accuracy"])}
    accuracy = float(chosen["accuracy"].iloc[0])
    return {
        "advised": advised,
        "measured": True,
        "advised_accuracy": accuracy,
        "best": best[key],
        "best_accuracy": float(best["accuracy"]),
        "best_ci_low": float(best["accuracy_ci_low"]),
        "best_ci_high": float(best["accuracy_ci_high"]),
        "is_best": bool(chosen.index[0] == best.name),
        "inside_best_interval": bool(best["accuracy_ci_low"] <= accuracy <= best["accuracy_ci_high"]),
    }


def full_comparison_seconds(comparison: pd.DataFrame, grid_sizes: Mapping[str, int]) -> float:
    """The transfer comparison's training time: per strategy its kept setting's mean seconds × seeds ×
    the size of its tuning grid (every candidate of the grid trains; their times are alike). Strategies
    without a grid size are left out."""
    return float(
        sum(
            row["train_seconds"] * row["seeds"] * grid_sizes[row["strategy"]]
            for _, row in comparison.iterrows()
            if row["strategy"] in grid_sizes
        )
    )


def audit_points(
    scores: pd.DataFrame, measurements: pd.DataFrame, layer_sweep_summary: pd.DataFrame, block_candidate: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per candidate and measured way: mean test accuracy over seeds beside its final-block scores;
    every point the audit ranks: those `across` candidates, and `across` blocks the layer sweep's
    copied_frozen and copied_finetuned accuracy per n beside `block_candidate`'s scores at block n,
    without the head scores, which rank nothing across blocks). The items are in column `item`."""
    top = scores[scores["final_block"].astype(bool)]
    measured = (
        measurements.groupby(["candidate", "measured"], sort=False)["accuracy"]
        .mean()
        .reset_index()
        .merge(top, on="candidate")
        .rename(columns={"candidate": "item"})
    )
    per_block = scores[scores["candidate"] == block_candidate]
    sweep = layer_sweep_summary[layer_sweep_summary["arm"].isin(["copied_frozen", "copied_finetuned"])]
    by_block = (
        sweep.rename(columns={"blocks": "block", "arm": "measured"})[["block", "measured", "accuracy"]]
        .merge(per_block, on="block")
        .rename(columns={"block": "item"})
    )
    by_block[list(HEAD_SCORES)] = float("nan")  # the final block's head scores rank nothing across blocks
    points = pd.concat([measured.assign(across="candidates"), by_block.assign(across="blocks")], ignore_index=True)
    return measured, points


def audit_correlations(points: pd.DataFrame, scores: tuple[str, ...] = SCORES) -> pd.DataFrame:
    """Kendall's τ of each score (those with a value) against accuracy, per `across` and `measured`."""
    rows = []
    for across, group in points.groupby("across", sort=False):
        for what, subset in group.groupby("measured", sort=False):
            usable = [score for score in scores if subset[score].notna().any()]
            for row in rank_correlations(subset, usable, "accuracy"):
                rows.append({"across": across, "measured": what, **row})
    return pd.DataFrame(rows)


def measured_ranks(measured: pd.DataFrame) -> pd.DataFrame:
    """Each item's rank (1 = the highest accuracy, ties share the lower rank) per measured way (columns)."""
    return measured.pivot(index="item", columns="measured", values="accuracy").rank(ascending=False, method="min")


def audit_verdicts(advice: Mapping, transfer_comparison: pd.DataFrame, layer_sweep_summary: pd.DataFrame) -> tuple:
    """`within_best` of the advised strategy in the transfer comparison, and of the advised freeze depth
    among the layer sweep's copied_frozen arm."""
    frozen = layer_sweep_summary[layer_sweep_summary["arm"] == "copied_frozen"].reset_index(drop=True)
    return (
        within_best(transfer_comparison, "strategy", advice["strategy"]),
        # a baseline won the race (nothing frozen): the prior's depth is what the sweep can judge
        within_best(frozen, "blocks", _first_given(advice["freeze_blocks"], advice.get("prior_freeze_blocks"))),
    )


def audit_seconds(measurements: pd.DataFrame) -> float:
    """The audit's own training time: each candidate's tuning per measured way, once."""
    return float(measurements.groupby(["candidate", "measured"])["tuning_seconds"].first().sum())


def advised_source(advice: Mapping) -> str:
    """The source the advice names; the prior's when the race chose a baseline (no source)."""
    return _first_given(advice["candidate"], advice.get("prior_candidate"))


def _first_given(*values):
    return next((value for value in values if value is not None), None)
