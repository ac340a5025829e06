import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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


def kedro_run(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`kedro run --env test ...` in `project`, as a user would type it; MLflow goes to the project's mlruns/."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--env", "test", *arguments],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
