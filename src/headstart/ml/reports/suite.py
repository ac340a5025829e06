"""The task suite's report: where transfer paid on each task, and the advice audited across the
tasks against the fixed policies a user might follow instead."""

from __future__ import annotations

import pandas as pd


def suite_report(tasks: pd.DataFrame, audit: pd.DataFrame, summary: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """The suite in Markdown, opening with its verdict in words: where transfer paid, and how the advice
    did against the fixed policies."""
    advice = summary.set_index("policy").loc[summary["policy"].iloc[0]]
    others = summary.iloc[1:]
    paid = tasks[tasks["beat_best_baseline"].fillna("") != ""]
    negative = tasks[tasks["negative_transfer"].fillna("") != ""]
    # each policy against the advice on the tasks where that policy was measured (LogME's pick: fewer)
    regrets = audit.pivot(index="task", columns="policy", values="normalised_regret")
    first = summary["policy"].iloc[0]
    others = others[others["tasks"] > 0]
    better_than_all = all(
        regrets[first][regrets[policy].notna()].mean() < regrets[policy].mean() for policy in others["policy"]
    )
    best_other = others.loc[others["mean_normalised_regret"].idxmin()] if len(others) else None
    verdict = [
        f"Over {len(tasks)} tasks (each its own comparison, n = {', '.join(sorted({str(s) for s in tasks['seeds']}))} "
        "seeds): transfer beat the best baseline with an interval clear of zero on "
        f"{len(paid)} ({', '.join(paid['task']) or 'none'}); some strategy was negative transfer on {len(negative)}.",
        f"The advice was inside the best's interval on {advice['hit_rate']:.0%} of the tasks, with a mean "
        f"normalised regret of {advice['mean_normalised_regret']:.3f} ({advice['mean_points_lost']:.2f} points "
        f"lost on average), at {advice['mean_cost_share']:.1%} of a full grid's images.",
    ]
    if best_other is not None:
        verdict.append(
            f"{'Better' if better_than_all else 'Not better'} than every fixed policy on regret (each on the tasks "
            "where it was measured): the best of them, "
            f"{best_other['policy']}, had {best_other['mean_normalised_regret']:.3f} and hit "
            f"{best_other['hit_rate']:.0%}."
        )
    columns = ["task", "about", "seeds", "best", "best_accuracy", "best_ci_low", "best_ci_high", "within_best"]
    return "\n".join(
        [
            "# The task suite: the measured best strategy per task, and the advice audited across tasks",
            "",
            " ".join(verdict),
            "",
            "## Per task",
            "",
            tasks[columns + ["best_baseline", "beat_best_baseline", "negative_transfer"]].to_markdown(
                index=False, floatfmt=".3f"
            ),
            "",
            "## The audit, per policy",
            "",
            "Hit: inside the measured best's paired interval (or the best itself); normalised regret: (best − "
            "chosen) / (best − worst) in mean test accuracy; cost share: the images the policy trained over the "
            "task's whole comparison grid (the advice: its race). Each task's advice uses that task's labels "
            "alone; a setting chosen by reading this audit is to be judged leave-one-task-out "
            "(scripts/suite_leave_one_out.py).",
            "",
            summary.to_markdown(index=False, floatfmt=".3f"),
            "",
            *(
                [
                    "## The race's scores against the test accuracy",
                    "",
                    "Per kind of race finisher, over the tasks: the race's score (the advice's evidence, on "
                    "validation) minus the test accuracy the comparison then measured for that strategy; for networks "
                    "also their best epoch's validation accuracy minus it. A kind read high sets it above the others.",
                    "",
                    calibration.to_markdown(index=False, floatfmt=".3f"),
                    "",
                ]
                if len(calibration)
                else []
            ),
            "## The audit, per task and policy",
            "",
            audit.to_markdown(index=False, floatfmt=".3f"),
        ]
    )
