"""A choice made by reading the suite's audit, judged leave-one-task-out: each task gets the variant with
the lowest mean normalised regret on the other tasks (headstart.ml.suite.leave_one_task_out).

    python scripts/suite_leave_one_out.py quarter=<old>/suite_audit.csv full=<new>/suite_audit.csv

Each argument is a variant's name and its `suite_audit.csv` (from `kedro run --pipelines=suite`), over the
same tasks; ties go to the earlier variant. Prints the variant each task got and the policies' summary.
"""

import sys

import pandas as pd

from headstart.ml.suite import ADVICE, audit_summary, leave_one_task_out


def main(arguments: list[str]) -> None:
    audits = {name: pd.read_csv(path) for name, path in (argument.split("=", 1) for argument in arguments)}
    held_out = leave_one_task_out(audits)
    print(held_out[["task", "variant", "chosen", "hit", "normalised_regret", "points_lost"]].to_markdown(index=False))
    rows = [audit_summary(held_out)]
    for name, audit in audits.items():
        rows.append(audit_summary(audit[audit["policy"] == ADVICE]).assign(policy=f"{ADVICE}: {name}"))
    print()
    print(pd.concat(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main(sys.argv[1:])
