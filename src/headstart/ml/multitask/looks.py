"""The multi-task comparison in planned looks (headstart.ml.looks), as the transfer comparison's: every
method's first look tuned on validation, then only the methods whose Δm against the single-task baseline
is still open get the next look's seeds, at their kept settings, while the time budget allows.

A method's per-seed gain is Δp (LibMTL; = −Δm of Maninis et al. 2019 when every task has the same
metrics; headstart.ml.metrics.relative_changes), in percent of the baseline's metrics, paired by seed;
the equivalence margin is in the same percent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from headstart.ml import progress
from headstart.ml.comparison import plan_look, seeds_text
from headstart.ml.looks import Decision, LookDesign, decide
from headstart.ml.metrics import relative_changes
from headstart.ml.multitask.training import MethodRecipe, TrainedNetwork
from headstart.ml.workers import Workers

logger = logging.getLogger(__name__)


@dataclass
class MultitaskLooks:
    """What the looks trained (each method's networks over every seed it got), how each method's
    setting was tuned at its first look, the test rows of every network, and the looks' record."""

    networks: dict[str, list[TrainedNetwork]]
    tuning: dict[str, dict[str, dict]]
    results: pd.DataFrame
    record: dict = field(default_factory=dict)


def seconds_per_seed(networks: Sequence[TrainedNetwork]) -> float:
    seeds = {network.info["seed"] for network in networks}
    return sum(network.info["train_seconds"] for network in networks) / max(len(seeds), 1)


def decisions_record(
    decisions: Mapping[str, Decision], reasons: Mapping[str, str], design: LookDesign
) -> dict[str, dict]:
    return {
        method: {
            "verdict": d.verdict,
            "seeds": d.n,
            "look": d.look + 1,
            "gain_percent": d.gain,
            "low": d.low,
            "high": d.high,
            "confidence": d.confidence,
            "open_because": reasons.get(method, ""),
        }
        for method, d in decisions.items()
    }


def run_looks(
    recipes: Mapping[str, MethodRecipe],
    baseline: str,
    seeds: Sequence[int],
    design: LookDesign,
    workers: Workers,
    seconds_left: Callable[[], float],
    evaluate: Callable[[str, list[TrainedNetwork], dict[str, dict]], pd.DataFrame],
) -> MultitaskLooks:
    """Train every method's first look in the workers (each tuned on validation), then decide every
    method at each look and train the open ones' next seeds, cheapest first while `seconds_left()` (wall
    seconds, math.inf without a budget) allows. `evaluate(method, networks, tuning)` gives test rows."""
    first = list(seeds[: design.looks[0]])
    progress.planned(len(recipes), 1, len(design.looks))
    jobs = {name: workers.submit(recipe.tune, first) for name, recipe in recipes.items()}
    state = MultitaskLooks({}, {}, pd.DataFrame())
    for name, job in jobs.items():
        tuned = job.result()
        progress.done()
        logger.info("Multi-task: %s trained, %s", name, seeds_text(first))
        state.networks[name] = tuned.networks
        state.tuning[name] = tuned.tuning
    state.results = pd.concat([evaluate(n, state.networks[n], state.tuning[n]) for n in recipes], ignore_index=True)
    cost = {name: seconds_per_seed(networks) for name, networks in state.networks.items()}
    rows = [name for name in recipes if name != baseline]
    decisions: dict[str, Decision] = {}
    reasons: dict[str, str] = {}
    looks: list[dict] = []
    open_rows = list(rows)
    for look, n in enumerate(design.looks):
        for row in open_rows:
            changes = relative_changes(state.results, row, baseline)
            decisions[row] = decide([changes[s][1] for s in seeds[:n] if s in changes], design, look)
        decided = {row: decisions[row].verdict for row in open_rows if decisions[row].verdict != "open"}
        open_rows = [row for row in open_rows if row not in decided]
        record = {"seeds": n, "decided": decided, "open": open_rows}
        looks.append(record)
        if look == len(design.looks) - 1 or not open_rows:
            reasons |= {row: f"seeds ran out at n = {n}" for row in open_rows}
            break
        new_seeds = list(seeds[n : design.looks[look + 1]])
        chosen, cut, planned = plan_look(open_rows, len(new_seeds), cost, baseline, seconds_left() * workers.count)
        record["planned_seconds"] = planned / workers.count
        record["cut"] = [f"{row}, {seeds_text(new_seeds)}, about {len(new_seeds) * cost[row]:.0f} s" for row in cut]
        reasons |= {row: f"time ran out before n = {design.looks[look + 1]}" for row in cut}
        for text in record["cut"]:
            logger.info("Not run for lack of time: %s", text)
        open_rows = chosen
        if not chosen:
            break
        logger.info(
            "Multi-task look %d of %d: %d open get %s", look + 1, len(design.looks), len(chosen), seeds_text(new_seeds)
        )
        to_train = [baseline, *chosen]
        progress.planned(len(to_train), look + 2, len(design.looks))
        settings = {name: {part: t["setting"] for part, t in state.tuning[name].items()} for name in to_train}
        jobs = {name: workers.submit(recipes[name].train_kept, new_seeds, settings[name]) for name in to_train}
        for name, job in jobs.items():
            networks = job.result()
            progress.done()
            state.networks[name] += networks
            state.results = pd.concat([state.results, evaluate(name, networks, state.tuning[name])], ignore_index=True)
    trained = {name: len({n.info["seed"] for n in networks}) for name, networks in state.networks.items()}
    state.record = {
        "design": design.describe(),
        "baseline": baseline,
        "gain": "Δp, in percent of the single-task baseline's metrics, paired by seed",
        "looks": looks,
        "decisions": decisions_record(decisions, reasons, design),
        "seeds_trained": trained,
        "seeds_listed": len(seeds),
        "seeds_saved": sum(len(seeds) - k for k in trained.values()),
    }
    return state
