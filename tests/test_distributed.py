"""Pretraining under `torchrun --nproc_per_node=2` (gloo on CPU, tiny data): DistributedDataParallel
gives the one-process result for the same global batch, and rank 0 alone saves and logs."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kedro.io.core import Version

from headstart.datasets.models import ModelDataset
from tests.conftest import copy_project, kedro_environment, kedro_run
from tests.test_run import mlflow_runs

pytestmark = pytest.mark.slow


def torchrun(project: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*command, "-m", "kedro", "run", "--env", "test", *arguments],
        cwd=project,
        env=kedro_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def saved_models(project: Path) -> list[dict[str, torch.Tensor]]:
    root = project / "data/06_models/source_model"
    return [
        ModelDataset(filepath=str(root), version=Version(v.name, None)).load()["source"] for v in sorted(root.iterdir())
    ]


def test_two_processes_train_as_one_does_and_only_rank_0_saves_and_logs(tmp_path):
    project = copy_project(tmp_path)
    assert kedro_run(project, "--pipelines=ingest").returncode == 0
    two = torchrun(project, "--pipelines=pretrain")
    assert two.returncode == 0, two.stderr[-3000:]
    one = kedro_run(project, "--pipelines=pretrain", "--params=pretrain.retrain=true")
    assert one.returncode == 0, one.stderr[-3000:]

    distributed, single = saved_models(project)  # one version each: rank 1 saved nothing
    assert distributed.info["fingerprint"] == single.info["fingerprint"]
    for name, tensor in single.state.items():
        if name.endswith(".weight"):  # per-process batch-norm statistics are the only difference
            relative = float((distributed.state[name] - tensor).norm() / tensor.norm())
            assert relative < 0.05, (name, relative)
    runs = [r for r in mlflow_runs(project) if "mlflow.parentRunId" not in r.data.tags]
    assert [r.data.tags["kedro.pipelines"] for r in runs] == ["ingest", "pretrain", "pretrain"]


def test_a_non_finite_loss_in_one_process_stops_every_process_with_its_step_named():
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tests.distributed_non_finite",
        ],
        cwd=Path(__file__).parents[1],
        env=kedro_environment(),
        capture_output=True,
        text=True,
        timeout=120,  # a process left waiting in a collective would hang here
    )
    assert launched.returncode != 0
    assert (
        "[rank1]: FloatingPointError: training loss is inf at epoch 1, step 3:" in launched.stderr
    )  # rank 1, where it happened
    assert "[rank0]: FloatingPointError: training loss is not finite at epoch 1 in another of the 2 processes" in (
        launched.stderr
    )
