"""Planned looks over seeds: where a comparison spends its seeds, with an error rate that holds.

A group-sequential design (Pocock 1977; O'Brien & Fleming 1979; alpha spending: Lan & DeMets 1983;
../shared/REFERENCE.md, "Seeds and budgets"): the looks are fixed in advance (seeds 3, 5, 10), the
error α is split over them (α_1 + … + α_J = α) and at look j a row's paired gain over the best
baseline gets the ordinary t-interval at level 1 − α_j. By the union bound the chance that any look's
interval misses the true gain is at most α, whatever rule stops a row (decided, time ran out). With
`family` rows sharing the error (Bonferroni), it is at most α over all of them together.

The split: linear alpha spending in the information fraction, α_j = α·(n_j − n_{j−1})/n_J, unless
shares are given. A row is decided when its interval lies inside [−δ, +δ] (equivalent within δ: two
one-sided tests, Schuirmann 1987; also when it clears zero by less than δ), else when it clears zero
(better or worse); otherwise it stays open and gets the next look's seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["better", "worse", "equivalent", "open"]
ErrorControl = Literal["per_comparison", "family_wise"]


@dataclass(frozen=True)
class LookDesign:
    """The looks (seeds at each), the error α and how it is split over looks and rows."""

    looks: tuple[int, ...]
    error: float = 0.05
    shares: tuple[float, ...] | None = None  # α_j / α per look; None: linear in the seeds (information fraction)
    equivalence_points: float | None = None  # δ: an interval inside [−δ, +δ] decides "equivalent"
    control: ErrorControl = "per_comparison"
    family: int = 1  # rows sharing the error under family_wise (Bonferroni)

    def __post_init__(self) -> None:
        if not self.looks or list(self.looks) != sorted(set(self.looks)) or self.looks[0] < 1:
            raise ValueError(f"looks must rise from at least 1 seed, got {list(self.looks)}")
        if self.shares is not None and len(self.shares) != len(self.looks):
            raise ValueError(f"look error shares must be one per look, got {list(self.shares)}")

    def look_error(self, look: int) -> float:
        """α_j for one row at look index `look` (0-based), divided over the family under family_wise."""
        if self.shares is not None:
            share = self.shares[look]
        else:
            previous = self.looks[look - 1] if look else 0
            share = (self.looks[look] - previous) / self.looks[-1]
        return self.error * share / (self.family if self.control == "family_wise" else 1)

    def confidence(self, look: int) -> float:
        return 1 - self.look_error(look)

    def describe(self) -> str:
        """The design in words, for the protocol text."""
        levels = ", ".join(f"n = {n}: {100 * self.confidence(j):.3g}%" for j, n in enumerate(self.looks))
        whose = (
            f"family-wise over the {self.family} rows compared (Bonferroni)"
            if self.control == "family_wise"
            else "per row (per comparison; over the rows, the expected number of wrong decisions is at most "
            "α times their number)"
        )
        margin = (
            f"; equivalent when it lies inside ±{self.equivalence_points:g} points" if self.equivalence_points else ""
        )
        return (
            f"Planned looks at {', '.join(map(str, self.looks))} seeds, error α = {self.error:g} {whose}, split "
            f"over the looks ({levels} paired t-intervals); a row is decided when its interval clears zero"
            f"{margin}, and only open rows get the next look's seeds. The error holds whatever stopped a row "
            "(union bound over the looks)."
        )


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    n: int
    look: int  # 0-based index of the look this decision was made at
    gain: float
    low: float
    high: float
    confidence: float


def verdicts(gains: np.ndarray, design: LookDesign, look: int) -> tuple[np.ndarray, ...]:
    """The decision rule over many rows at once: `gains` is (rows, n) paired gains in points at look index
    `look`; returns (verdicts, means, lows, highs). The interval is the paired t-interval at the look's
    level (width 0 when every seed agrees, none below 2 seeds), as metrics.t_interval computes it."""
    gains = np.atleast_2d(np.asarray(gains, dtype=float))
    n = gains.shape[1]
    means = gains.mean(axis=1)
    if n < 2:
        nan = np.full(len(gains), np.nan)
        return np.full(len(gains), "open", dtype=object), means, nan, nan
    half = stats.t.ppf(1 - design.look_error(look) / 2, n - 1) * gains.std(axis=1, ddof=1) / np.sqrt(n)
    lows, highs = means - half, means + half
    margin = design.equivalence_points or 0.0
    verdict = np.full(len(gains), "open", dtype=object)
    verdict[lows > 0] = "better"
    verdict[highs < 0] = "worse"
    # inside the margin is what a practitioner acts on, also when the interval clears zero by less
    verdict[(highs <= margin) & (lows >= -margin) & (margin > 0)] = "equivalent"
    return verdict, means, lows, highs


def decide(gains: Sequence[float], design: LookDesign, look: int) -> Decision:
    """The verdict on one row's paired gains (points, one per seed) at look index `look`."""
    verdict, means, lows, highs = verdicts(np.asarray(gains, dtype=float)[None, :], design, look)
    return Decision(
        verdict[0], len(gains), look, float(means[0]), float(lows[0]), float(highs[0]), design.confidence(look)
    )


def simulate(
    design: LookDesign, true_gains: Sequence[float], spread: float, replications: int, seed: int = 0
) -> dict[str, object]:
    """Monte-Carlo of the planned looks on simulated seed results, through `verdicts` (the rule the
    comparison uses): each row's paired gains are drawn normal (mean its true gain, sd `spread` points);
    open rows get the next look's seeds. Returns the share of rows wrongly decided (better or worse
    against the true sign or at a true gain of zero; equivalent at a true gain beyond the margin), the
    share of replications with any wrong decision, the decisions per look (rows per replication) and the
    mean seeds a row used."""
    rng = np.random.default_rng(seed)
    truth = np.asarray(true_gains, dtype=float)
    draws = rng.normal(truth, spread, size=(replications, design.looks[-1], len(truth)))
    gains = draws.transpose(0, 2, 1).reshape(replications * len(truth), design.looks[-1])
    rows_truth = np.tile(truth, replications)
    final = np.full(len(gains), "open", dtype=object)
    seeds_used = np.full(len(gains), design.looks[-1])
    open_rows = np.ones(len(gains), dtype=bool)
    decided_at = {}
    for look, n in enumerate(design.looks):
        verdict = verdicts(gains[:, :n], design, look)[0]
        now = open_rows & (verdict != "open")
        final[now], seeds_used[now] = verdict[now], n
        decided_at[n] = float(now.sum()) / replications
        open_rows &= ~now
    margin = design.equivalence_points or 0.0
    wrong = ((final == "better") & (rows_truth <= 0)) | ((final == "worse") & (rows_truth >= 0))
    wrong |= (final == "equivalent") & (np.abs(rows_truth) >= margin)
    return {
        "wrong_decision_rate": float(wrong.mean()),
        "family_wise_error": float(wrong.reshape(replications, len(truth)).any(axis=1).mean()),
        "decided_per_look": decided_at,
        "mean_seeds": float(seeds_used.mean()),
    }
