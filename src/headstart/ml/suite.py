"""The task suite's evidence: per task, the measured best strategy of its comparison with its interval;
per task and policy (the advice, the prior alone, the fixed policies a user might follow instead), the
audit of its choice against that task's comparison: hit, normalised regret, points lost, cost share.

- hit: the chosen strategy is the measured best (highest mean test accuracy) or its paired interval of
  the gap to the best reaches zero (`within_top` in the comparison, n = the comparison's seeds);
- normalised regret (Quick-Tune, Arango et al. 2024): (best − chosen) / (best − worst) over the
  comparison's strategies, in mean test accuracy; 0 when they all tie;
- points lost: 100 × (best − chosen);
- cost share: the images the policy trained (the advice: its race; a fixed policy: its strategy's whole
  tuning grid) over the images of the task's whole comparison grid;
- the advice's set (the strategies its race could not separate from its pick, `race.separation`): a set
  hit when any of them is a hit as above, and the set's size; the single pick's hit beside them.
Each summary is stated over all tasks and over each domain apart (`domain_summary`: near tasks, whose
targets are characters like the source's, and far ones, natural-image patches), with its n of tasks.
LogME's pick is the variant of advise.score_pick_strategy from the source LogME ranks first; it is
measured only where the comparison trained that variant (a strategy naming that `source`).
Every task's advice is made from that task's training and validation labels alone. A choice made by
reading the suite's audit (a threshold, a race setting) is judged leave-one-task-out
(`leave_one_task_out`): each task gets the variant that did best on the other tasks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

FIXED_POLICIES = {  # what a user might do instead of asking, each a strategy of transfer.strategies
    "always linear probe": "feature_svm",
    "always fine-tune the top block": "finetune_top",
    "always fine-tune all, low body rate": "finetune_full",
    "always L2-SP": "l2_sp",
}
ADVICE, PRIOR = "advice (prior + race)", "prior alone (size × similarity rule)"
# You et al. 2021: rank the sources by LogME, fine-tune the first (advise.score_pick_strategy from it)
LOGME_PICK = "LogME's pick (fine-tune its first source)"


def task_outcome(task: str, about: str, comparison: pd.DataFrame, domain: str = "near") -> dict:
    """One row of the suite table: the task's domain (near or far from the source), its measured best, its
    interval, who is inside it, and what transfer gave against the best baseline."""
    top = comparison.loc[comparison["accuracy"].idxmax()]
    baseline = comparison[comparison["role"] == "best baseline"].iloc[0]
    transfer = comparison[comparison["role"] == "transfer"]
    beats = transfer[transfer["gain_over_best_ci_low"] > 0]
    best_transfer = transfer.loc[transfer["accuracy"].idxmax()] if len(transfer) else None
    return {
        "task": task,
        "domain": domain,
        "about": about,
        "seeds": int(top["seeds"]),
        "best": top["strategy"],
        "best_role": top["role"],
        "best_accuracy": float(top["accuracy"]),
        "best_ci_low": float(top["accuracy_ci_low"]),
        "best_ci_high": float(top["accuracy_ci_high"]),
        "within_best": ", ".join(comparison.loc[comparison["within_top"].astype(bool), "strategy"]),
        "best_baseline": baseline["strategy"],
        "best_baseline_accuracy": float(baseline["accuracy"]),
        "best_transfer": None if best_transfer is None else best_transfer["strategy"],
        "best_transfer_gain_points": None if best_transfer is None else float(best_transfer["gain_over_best_points"]),
        "beat_best_baseline": ", ".join(beats["strategy"]),
        "negative_transfer": ", ".join(transfer.loc[transfer["negative_transfer"].astype(bool), "strategy"]),
        **looks_outcome(comparison),
    }


def looks_outcome(comparison: pd.DataFrame) -> dict:
    """What the planned looks spent on a task and left open: its rows, their seeds in all (n per row
    summed), the most any row got, and each row still open with the seeds it had (fewer than the most:
    its later looks did not fit the budget, or the budget ended the looks before it)."""
    verdicts = comparison["verdict"] if "verdict" in comparison else pd.Series("", index=comparison.index)
    open_rows = comparison[verdicts == "open"]
    return {
        "rows": len(comparison),
        "row_seeds": int(comparison["seeds"].sum()),
        "most_seeds": int(comparison["seeds"].max()),
        "open": ", ".join(f"{row.strategy} ({row.seeds})" for row in open_rows.itertuples()),
    }


def audit_choice(comparison: pd.DataFrame, chosen: str | None, images: float | None) -> dict:
    """A policy's choice on one task, judged by that task's comparison."""
    by_strategy = comparison.set_index("strategy")
    best, worst = by_strategy["accuracy"].max(), by_strategy["accuracy"].min()
    grid = float(by_strategy["grid_images_seen"].sum()) if "grid_images_seen" in by_strategy else np.nan
    if chosen not in by_strategy.index:
        return {"chosen": chosen, "measured": False, "hit": False, "normalised_regret": np.nan, "points_lost": np.nan}
    accuracy = by_strategy.loc[chosen, "accuracy"]
    return {
        "chosen": chosen,
        "measured": True,
        "accuracy": float(accuracy),
        "hit": bool(by_strategy.loc[chosen, "within_top"]),
        "normalised_regret": float((best - accuracy) / (best - worst)) if best > worst else 0.0,
        "points_lost": float(100 * (best - accuracy)),
        "images": images,
        "cost_share": images / grid if images is not None and grid > 0 else np.nan,
    }


def policy_choices(comparison: pd.DataFrame, advice: Mapping) -> dict[str, tuple[str | None, float | None]]:
    """Each policy's choice on a task and the images it trained: the advice, the prior, the fixed ones."""
    grid_images = comparison.set_index("strategy").get("grid_images_seen", pd.Series(dtype=float))

    def trained(strategy: str) -> float | None:
        return float(grid_images[strategy]) if strategy in grid_images.index else None

    return {
        ADVICE: (advice["strategy"], float(advice.get("race_images_seen", 0.0))),
        PRIOR: (advice.get("prior_strategy", advice["strategy"]), trained(advice.get("prior_strategy", ""))),
        **{policy: (strategy, trained(strategy)) for policy, strategy in FIXED_POLICIES.items()},
        LOGME_PICK: (logme := advice.get("score_picks", {}).get("logme"), trained(logme or "")),
    }


def audit_set(comparison: pd.DataFrame, members: list[str] | None) -> dict:
    """The advice's set on one task: its members, size, and whether any is a hit (`within_top`); empty
    for an advice made before it named a set."""
    if members is None:
        return {}
    hits = comparison.set_index("strategy")["within_top"].astype(bool)
    hit = any(bool(hits.get(name, False)) for name in members)
    return {"set": ", ".join(members), "set_size": len(members), "set_hit": hit}


def suite_audit(
    comparisons: Mapping[str, pd.DataFrame], advices: Mapping[str, Mapping], domains: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per task and policy, with the task's domain (`domains`, near by default); the advice's row
    also scores its set."""
    rows = []
    for task, comparison in comparisons.items():
        domain = (domains or {}).get(task, "near")
        for policy, (chosen, images) in policy_choices(comparison, advices[task]).items():
            row = {"task": task, "domain": domain, "policy": policy, **audit_choice(comparison, chosen, images)}
            if policy == ADVICE:
                row |= audit_set(comparison, advices[task].get("inseparable"))
            rows.append(row)
    return pd.DataFrame(rows)


def finisher_kind(row: Mapping) -> str:
    """A race row's kind: a network (it trained epochs), a classical reference on the pixels (no source),
    or a classifier on frozen features."""
    if row.get("epochs", 0) > 0:
        return "network"
    source = row.get("source")
    return "classical reference (pixels)" if source is None or pd.isna(source) else "classifier on frozen features"


def race_calibration(comparisons: Mapping[str, pd.DataFrame], advices: Mapping[str, Mapping]) -> pd.DataFrame:
    """Per kind of race finisher (a network; a classical reference on the pixels; a classifier on frozen
    features), how far the race's evidence sat from what the comparison then measured on the test split:
    mean (race score − test accuracy) and, for networks, mean (best epoch − test accuracy), over every
    finisher whose strategy the comparison measured (n = finishers). A score that reads high for one
    kind and low for another sets them unequally in the race."""
    rows = []
    for task, comparison in comparisons.items():
        tested = comparison.set_index("strategy")["accuracy"]
        for row in advices[task].get("race", {}).get("candidates", []):
            if row.get("cut_in_race") or row["strategy"] not in tested.index:
                continue
            kind = finisher_kind(row)
            test = float(tested[row["strategy"]])
            score = row.get("race_score", row["validation_accuracy"])  # advice made before race_score existed
            best_epoch = row["validation_accuracy"] - test if kind == "network" else np.nan
            rows.append({"kind": kind, "race_score_error": score - test, "best_epoch_error": best_epoch})
    table = pd.DataFrame(rows, columns=["kind", "race_score_error", "best_epoch_error"])
    summary = table.groupby("kind", sort=True).agg(
        finishers=("race_score_error", "size"),
        mean_race_score_minus_test=("race_score_error", "mean"),
        mean_best_epoch_minus_test=("best_epoch_error", "mean"),
    )
    return summary.reset_index()


def audit_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """Per policy over the tasks: hit rate, mean normalised regret, mean points lost, mean cost share
    (n = tasks where its strategy was measured); for the advice also its set's hit rate and mean size
    (over the tasks whose advice named a set)."""
    rows = []
    for policy, group in audit.groupby("policy", sort=False):
        measured = group[group["measured"]]
        named = group[group["set_size"].notna()] if "set_size" in group else group.iloc[:0]
        rows.append(
            {
                "policy": policy,
                "tasks": len(measured),
                "hit_rate": float(measured["hit"].mean()) if len(measured) else np.nan,
                "mean_normalised_regret": float(measured["normalised_regret"].mean()) if len(measured) else np.nan,
                "mean_points_lost": float(measured["points_lost"].mean()) if len(measured) else np.nan,
                "mean_cost_share": float(measured["cost_share"].mean()) if len(measured) else np.nan,
                "set_hit_rate": float(named["set_hit"].astype(bool).mean()) if len(named) else np.nan,
                "mean_set_size": float(named["set_size"].mean()) if len(named) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def domain_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """`audit_summary` over all tasks (domain `all`) and over each domain's tasks apart (near, then far),
    so the far tasks, where transfer from the source is least likely to pay, are not averaged away."""
    domains = audit["domain"] if "domain" in audit else pd.Series("near", index=audit.index)
    parts = [audit_summary(audit).assign(domain="all")]
    parts += [audit_summary(audit[domains == d]).assign(domain=d) for d in ("near", "far") if (domains == d).any()]
    table = pd.concat(parts, ignore_index=True)
    return table[["domain", *(column for column in table.columns if column != "domain")]]


def leave_one_task_out(audits: Mapping[str, pd.DataFrame], policy: str = ADVICE) -> pd.DataFrame:
    """`policy`'s audit when a choice among variants of it (e.g. two race settings, each a whole suite
    audit) is made on the suite: each task gets the variant with the lowest mean normalised regret on
    the other tasks (ties: the earlier variant), and is scored by that variant's row. One row per task,
    with the variant chosen for it; `audit_summary` reads it like any policy's rows."""
    rows = {name: audit[audit["policy"] == policy].set_index("task") for name, audit in audits.items()}
    tasks = list(next(iter(rows.values())).index)
    if any(list(variant.index) != tasks for variant in rows.values()):
        raise ValueError("leave_one_task_out: every variant's audit must cover the same tasks")
    chosen = []
    for task in tasks:
        others = {name: variant.drop(index=task)["normalised_regret"].mean() for name, variant in rows.items()}
        best = min(others, key=lambda name: (others[name], list(rows).index(name)))
        chosen.append(
            {"task": task, **rows[best].loc[task].to_dict(), "variant": best, "policy": f"{policy}, leave-one-task-out"}
        )
    return pd.DataFrame(chosen)
