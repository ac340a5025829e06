"""Thin nodes over headstart.ml.suite: the suite table, the audit across tasks, the report."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.plots import plot_suite_audit
from headstart.ml.reports.suite import suite_report
from headstart.ml.suite import audit_summary, domain_summary, race_calibration, suite_audit, task_outcome
from headstart.params import SuiteParams


def summarise_suite(suite: SuiteParams, *task_outputs) -> tuple[pd.DataFrame, pd.DataFrame, dict, str, Figure]:
    """`task_outputs`: each chosen task's transfer comparison and advice, in `suite.chosen()` order.
    The per-task table, the audit per task and policy, its summary per policy (over all tasks, and per
    domain: `{column}.{domain}.{policy}`) and the race's calibration per kind of finisher (as MLflow
    metrics), the report, and the audit's figure."""
    tasks = suite.chosen()
    comparisons = dict(zip(tasks, task_outputs[0::2]))
    advices = dict(zip(tasks, task_outputs[1::2]))
    domains = {t: suite.tasks[t].domain for t in tasks}
    outcomes = pd.DataFrame([task_outcome(t, suite.tasks[t].about, comparisons[t], domains[t]) for t in tasks])
    audit = suite_audit(comparisons, advices, domains)
    summary = audit_summary(audit)
    by_domain = domain_summary(audit)
    metrics = {
        f"{column}.{policy}" if domain == "all" else f"{column}.{domain}.{policy}": value
        for (domain, policy), row in by_domain.set_index(["domain", "policy"]).iterrows()
        for column, value in row.items()
        if column != "tasks" and pd.notna(value)
    }
    calibration = race_calibration(comparisons, advices)
    metrics |= {  # the race's evidence against the test accuracy, per kind of finisher
        f"{column}.{kind}": value
        for kind, row in calibration.set_index("kind").iterrows()
        for column, value in row.items()
        if column != "finishers" and pd.notna(value)
    }
    return (
        outcomes,
        audit,
        {"tasks": len(tasks), **metrics},
        suite_report(outcomes, audit, by_domain, calibration),
        plot_suite_audit(summary, len(tasks)),
    )
