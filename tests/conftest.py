import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: one thread each, and each run they start
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def copy_project(destination: Path) -> Path:
    """A scratch copy of the project (code and conf only), so runs never touch the real data/ or mlruns/."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, destination / name)
    shutil.copytree(PROJECT_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(
        PROJECT_ROOT / "src", destination / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (destination / "conf" / "local").mkdir()
    return destination


def kedro_environment(**extra: str) -> dict[str, str]:
    """This environment without MLFLOW_* settings (MLflow goes to the project's mlruns/), plus `extra`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**environment, "COLUMNS": "400", **extra}  # wide enough that no log line wraps a long tmp path


def kedro_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "kedro", "run", "--env", "test", *arguments]


def kedro_run(project: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    """`kedro run --env test ...` in `project`, as a user would type it; MLflow goes to the project's mlruns/."""
    return subprocess.run(
        kedro_command(*arguments),
        cwd=project,
        env=kedro_environment(**environment),
        capture_output=True,
        text=True,
        timeout=600,
    )


def runs_below(runs: list, parent_id: str, level: str | None = None) -> list:
    """Every run below `parent_id` at any depth (a comparison's trainings nest under their strategy's
    run); with `level`, only those tagged `headstart.level` so, or untagged children for "training"."""
    children: dict[str, list] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
    found, frontier = [], [parent_id]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += [run.info.run_id for run in below]
    if level == "training":
        return [run for run in found if run.data.tags.get("headstart.level") != "strategy"]
    return [run for run in found if level is None or run.data.tags.get("headstart.level") == level]
