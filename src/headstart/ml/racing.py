"""Successive halving (Jamieson & Talwalkar 2016) over a tuning grid, judged on validation only.

Every candidate trains a fraction of the budget; the best 1/η by mean validation accuracy over the
seeds (ties: lower validation loss, then grid order) go on, η times further, until the last rung
trains the survivors to the full budget. A survivor pauses and resumes from its checkpoint, so its
final model is the one an uninterrupted training makes: racing changes which candidates are
trained to the end, never what training to the end gives.

A few lines of ours rather than Optuna's SuccessiveHalvingPruner: that pruner is asynchronous (a
trial's fate is decided against whichever trials reached the rung first), so the order in which a
fixed grid is trained would sway the choice; here each rung is judged once every candidate has
reached it, over the same paired seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

Candidate = TypeVar("Candidate", bound=Hashable)
Score = tuple[float, ...]  # higher is better, compared in order (accuracy, then −loss)


def rung_epochs(epochs: int, candidates: int, eta: int, earliest: int = 1) -> list[int]:
    """The epochs of each rung before the full budget: E·η^(i−s) for i < s, s = ⌈log_η n⌉ rungs
    (the rungs that cut n candidates to one), none before `earliest` (a training's `min_epochs`: a
    network from scratch on a few labels sits near chance before it, so a rung there judges noise);
    rungs that would reach the full budget are dropped."""
    if candidates < 2 or eta < 2:
        return []
    rungs = math.ceil(math.log(candidates) / math.log(eta) - 1e-9)
    budgets = [max(1, earliest, round(epochs * eta ** (i - rungs))) for i in range(rungs)]
    return sorted({b for b in budgets if b < epochs})


def raced_epochs(epochs: int, candidates: int, eta: int | None, earliest: int = 1) -> int:
    """The epochs successive halving trains over a grid of `candidates` (every candidate to the first
    rung, the survivors of each rung to the next, the last ones to `epochs`); the whole grid's
    `candidates × epochs` without racing."""
    if not eta:
        return candidates * epochs
    alive, trained, done = candidates, 0, 0
    for budget in rung_epochs(epochs, candidates, eta, earliest):
        trained, done = trained + alive * (budget - done), budget
        alive = max(1, math.ceil(alive / eta))
    return trained + alive * (epochs - done)


def survivors(scores: dict[Candidate, Score], order: Sequence[Candidate], eta: int) -> list[Candidate]:
    """The best ⌈n/η⌉ of a rung, by score; exact ties keep the grid's order."""
    keep = max(1, math.ceil(len(scores) / eta))
    ranked = sorted((c for c in order if c in scores), key=lambda c: scores[c], reverse=True)  # stable sort
    return ranked[:keep]


def successive_halving(
    candidates: Sequence[Candidate],
    budgets: Sequence[int],
    eta: int,
    score_at: Callable[[Candidate, int], Score] | None = None,
    *,
    score_rung: Callable[[list[Candidate], int], dict[Candidate, Score]] | None = None,
) -> tuple[list[Candidate], list[dict]]:
    """The candidates that reach the full budget, and per rung its epochs, scores and survivors.
    `score_at(candidate, epochs)` trains (or reads) the candidate to `epochs` and returns its score;
    `score_rung(alive, epochs)` does so for a whole rung at once (its trainings can run together)."""
    if score_rung is None:
        score_rung = lambda alive, budget: {c: score_at(c, budget) for c in alive}  # noqa: E731
    alive, rungs = list(candidates), []
    for budget in budgets:
        if len(alive) < 2:
            break
        scores = score_rung(alive, budget)
        alive = survivors(scores, candidates, eta)
        rungs.append({"epochs": budget, "scores": scores, "kept": list(alive)})
    return alive, rungs


def best_in_history(history: Sequence[dict], epochs: int) -> Score:
    """A training's score after `epochs`, read from its history: the best epoch so far by validation
    accuracy, ties by lower loss (the epoch `fit` keeps)."""
    seen = [r for r in history if r["epoch"] <= epochs and "validation_accuracy" in r]
    best = max(seen, key=lambda r: (r["validation_accuracy"], -r["validation_loss"]))
    return best["validation_accuracy"], -best["validation_loss"]


def setting_text(setting: dict[str, float]) -> str:
    """A candidate of a grid as its report and logs name it, e.g. `lr_scale=0.3, alpha=1.5`."""
    return ", ".join(f"{name}={value:g}" for name, value in setting.items())
