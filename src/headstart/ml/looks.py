"""Planned looks over seeds: where a comparison spends its seeds, with an error rate that holds.

A group-sequential design (Pocock 1977; O'Brien & Fleming 1979; alpha spending: Lan & DeMets 1983;
../shared/REFERENCE.md, "Seeds and budgets"): the looks are fixed in advance (seeds 3, 5, 10), the
error α is split over them (α_1 + … + α_J = α) and at look j a row's paired gain over the best
baseline gets the ordinary t-interval at level 1 − α_j. By the union bound the chance that any look's
interval misses the true gain is at most α, whatever rule stops a row (decided, time ran out). With
`family` rows sharing the error (Bonferroni), it is at most α over all of them together.

The split: linear alpha spending in the information fraction, α_j = α·(n_j − n_{j−1})/n_J, unless
shares are given. A row is decided when its interval clears zero (better or worse) or lies inside
[−δ, +δ] (equivalent within δ: two one-sided tests, Schuirmann 1987); otherwise it stays open and
gets the next look's seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from headstart.ml.metrics import t_interval

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
        if not self.looks or list(self.looks) != sorted(set(self.looks)) or self.looks[0] < 2:
            raise ValueError(f"looks must rise from at least 2 seeds, got {list(self.looks)}")
        if self.shares is not None and (len(self.shares) != len(self.looks) or not math.isclose(sum(self.shares), 1)):
            raise ValueError(f"look error shares must be one per look and sum to 1, got {list(self.shares)}")

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


def decide(gains: Sequence[float], design: LookDesign, look: int) -> Decision:
    """The verdict on one row's paired gains (points, one per seed) at look index `look`."""
    confidence = design.confidence(look)
    gain, low, high = t_interval(gains, confidence)
    if math.isnan(low):
        verdict: Verdict = "open"
    elif low > 0:
        verdict = "better"
    elif high < 0:
        verdict = "worse"
    elif design.equivalence_points and -design.equivalence_points <= low and high <= design.equivalence_points:
        verdict = "equivalent"
    else:
        verdict = "open"
    return Decision(verdict, len(gains), look, gain, low, high, confidence)


def look_at(n: int, design: LookDesign) -> int | None:
    """The index of the look with exactly `n` seeds, or None."""
    return design.looks.index(n) if n in design.looks else None


def decide_rows(gains: dict[str, Sequence[float]], design: LookDesign, look: int) -> dict[str, Decision]:
    """Every row's decision at look index `look`, from its paired gains over the seeds it has."""
    return {row: decide(values, design, look) for row, values in gains.items()}


def simulate(
    design: LookDesign, true_gains: Sequence[float], spread: float, replications: int, seed: int = 0
) -> dict[str, object]:
    """Monte-Carlo of the planned looks on simulated seed results, through `decide`: each row's paired
    gains are drawn normal (mean its true gain, sd `spread` points); open rows get the next look's seeds.
    Returns the share of rows wrongly decided (better/worse against the true sign, or better or worse
    at a true gain of zero), the share of replications with any wrong decision, the decisions per look
    and the mean seeds a row used."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows, last = len(true_gains), design.looks[-1]
    wrong_rows = any_wrong = seeds_used = 0
    decided_at = [0] * len(design.looks)
    for _ in range(replications):
        draws = rng.normal(true_gains, spread, size=(last, rows))
        wrong_here = False
        for row, truth in enumerate(true_gains):
            for look, n in enumerate(design.looks):
                decision = decide(draws[:n, row], design, look)
                if decision.verdict != "open" or look == len(design.looks) - 1:
                    break
            seeds_used += n
            if decision.verdict == "open":
                continue
            decided_at[look] += 1
            wrong = (decision.verdict == "better" and truth <= 0) or (decision.verdict == "worse" and truth >= 0)
            wrong = wrong or (decision.verdict == "equivalent" and abs(truth) >= (design.equivalence_points or 0))
            wrong_rows += wrong
            wrong_here = wrong_here or wrong
        any_wrong += wrong_here
    return {
        "wrong_decision_rate": wrong_rows / (replications * rows),
        "family_wise_error": any_wrong / replications,
        "decided_per_look": {n: count / replications for n, count in zip(design.looks, decided_at)},
        "mean_seeds": seeds_used / (replications * rows),
    }
