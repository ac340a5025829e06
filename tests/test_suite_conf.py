"""The shipped suite's conf: a task's `transfer.leave_out` replaces the project's list, so it must name
the base's left-out strategies again (a task would otherwise compare variants the others leave out)."""

import yaml

from tests.conftest import PROJECT_ROOT


def test_every_suite_task_leaves_out_what_the_base_leaves_out():
    base = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_transfer.yml").read_text())["transfer"]["leave_out"]
    tasks = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_suite.yml").read_text())["suite"]["tasks"]
    for name, task in tasks.items():
        left_out = (task.get("overrides", {}).get("transfer") or {}).get("leave_out")
        assert left_out is None or set(base) <= set(left_out), name
