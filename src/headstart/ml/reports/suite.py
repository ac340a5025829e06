"""The task suite's report: where transfer paid on each task, and the advice audited across the
tasks against the fixed policies a user might follow instead, over all tasks and per domain (the far
tasks apart from the near ones), with the advice's set of strategies it could not separate."""

from __future__ import annotations

import pandas as pd


def suite_report(tasks: pd.DataFrame, audit: pd.DataFrame, by_domain: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """The suite in Markdown, opening with its verdict in words: where transfer paid, how the advice did
    against the fixed policies, how its set did, and how both did on the far tasks apart. `by_domain` is
    `suite.domain_summary`: per policy over all tasks (domain `all`), then per domain."""
    summary = by_domain[by_domain["domain"] == "all"].drop(columns="domain").reset_index(drop=True)
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
    verdict += _set_and_domain_sentences(by_domain, summary["policy"].iloc[0])
    if best_other is not None:
        verdict.append(
            f"{'Better' if better_than_all else 'Not better'} than every fixed policy on regret (each on the tasks "
            "where it was measured): the best of them, "
            f"{best_other['policy']}, had {best_other['mean_normalised_regret']:.3f} and hit "
            f"{best_other['hit_rate']:.0%}."
        )
    columns = ["task", "domain", "about", "seeds", "best", "best_accuracy", "best_ci_low", "best_ci_high"]
    columns = [column for column in columns if column in tasks] + ["within_best"]
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
            *_looks_section(tasks),
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
            *_domain_section(by_domain),
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


def _set_and_domain_sentences(by_domain: pd.DataFrame, policy: str) -> list[str]:
    """The advice's set over all tasks, and the advice on each domain apart, in words (none for a suite
    of one domain, or advice made before it named a set)."""
    rows = by_domain[by_domain["policy"] == policy].set_index("domain")
    whole = rows.loc["all"]
    sentences = []
    if pd.notna(whole.get("set_hit_rate")):
        sentences.append(
            f"Its set (the strategies its race could not separate from its pick) held a hit on "
            f"{whole['set_hit_rate']:.0%} of the tasks, {whole['mean_set_size']:.1f} strategies on average, "
            f"against {whole['hit_rate']:.0%} for the pick alone."
        )
    if {"near", "far"} <= set(rows.index):
        near, far = rows.loc["near"], rows.loc["far"]
        sentences.append(
            f"On the {far['tasks']:.0f} far tasks the advice hit {far['hit_rate']:.0%} (regret "
            f"{far['mean_normalised_regret']:.3f}), on the {near['tasks']:.0f} near ones {near['hit_rate']:.0%} "
            f"({near['mean_normalised_regret']:.3f})."
        )
    return sentences


def _domain_section(by_domain: pd.DataFrame) -> list[str]:
    """The audit per domain: every policy's summary over the near tasks and over the far ones, apart."""
    apart = by_domain[by_domain["domain"] != "all"]
    if apart["domain"].nunique() < 2:
        return []
    return [
        "## The audit, near and far tasks apart",
        "",
        "Near: a target of characters, like the source's printed digits (another task, a shifted domain); far: "
        "patches of natural photographs (another kind of image). Each row over its domain's tasks (n = tasks).",
        "",
        apart.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]


def _looks_section(tasks: pd.DataFrame) -> list[str]:
    """Per task, what the planned looks spent (the rows' seeds in all, the most a row got) and left open
    (each open row with its seeds; fewer than the most: the budget ended its looks)."""
    if "row_seeds" not in tasks:
        return []
    return [
        "## The looks, per task",
        "",
        "Each row of a task's comparison gets the first look's seeds, and the next look's only while its verdict is "
        "open and the budget lasts. row_seeds: the seeds of all its rows together; open: the rows still open, each "
        "with its seeds (n).",
        "",
        tasks[["task", "domain", "rows", "row_seeds", "most_seeds", "open"]].to_markdown(index=False),
        "",
    ]
