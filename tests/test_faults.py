"""Faults met for real on tiny data (conf/test): each stops with a clear message or recovers, and every
earlier version stays intact and loadable."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from fsspec.implementations.local import LocalFileSystem
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError, Version

from headstart import configured
from headstart.datasets.models import ModelDataset
from tests.conftest import copy_project, kedro_command, kedro_environment, kedro_run, runs_below
from tests.test_run import mlflow_runs

pytestmark = pytest.mark.slow
SCRATCH = "--namespaces=scratch"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("faults"))
    for pipeline in ("ingest", "pretrain"):
        result = kedro_run(project, f"--pipelines={pipeline}")
        assert result.returncode == 0, result.stderr[-3000:]
    return project


def versions(project: Path, strategy: str = "scratch") -> list[str]:
    folder = project / "data/06_models" / strategy / "target_models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def every_version_loads(project: Path, strategy: str = "scratch") -> None:
    for version in versions(project, strategy):
        models = ModelDataset(
            filepath=str(project / "data/06_models" / strategy / "target_models"), version=Version(version, None)
        ).load()
        assert models, version


def test_an_unreachable_tracking_server_stops_the_run_at_once(project):
    before = versions(project)
    result = kedro_run(project, "--pipelines=transfer", SCRATCH, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    # at once: before any node ran (no estimate, no training), whatever the machine's speed
    assert result.returncode == 1 and "Running node" not in result.stderr + result.stdout
    assert "the MLflow tracking server at http://127.0.0.1:9 cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr and versions(project) == before


def test_a_nan_loss_names_strategy_seed_and_epoch_fails_the_run_and_saves_nothing(project):
    before = versions(project)
    lr = "transfer.strategies.scratch.training"
    result = kedro_run(project, "--pipelines=transfer", SCRATCH, f"--params={lr}.body_lr=1e30,{lr}.head_lr=1e30")
    assert result.returncode != 0
    assert "strategy scratch, seed 0, lr_scale=1: training loss is" in result.stderr
    assert "at epoch 1" in result.stderr
    assert versions(project) == before
    assert mlflow_runs(project)[-1].info.status == "FAILED"
    every_version_loads(project)


def test_two_runs_at_once_both_finish_with_their_own_versions(project):
    before = versions(project, "pixels_knn")
    command = kedro_command("--pipelines=transfer", "--namespaces=pixels_knn")
    runs = [
        subprocess.Popen(command, cwd=project, env=kedro_environment(), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read()[-3000:]
    assert len(versions(project, "pixels_knn")) == len(before) + 2
    finished = [r for r in mlflow_runs(project) if r.data.tags.get("kedro.namespaces") == "pixels_knn"]
    assert len(finished) == 2 and {r.info.status for r in finished} == {"FINISHED"}
    every_version_loads(project, "pixels_knn")


def test_a_run_killed_mid_training_resumes_and_ends_as_an_uninterrupted_run(project):
    arguments = ("--pipelines=transfer", SCRATCH, "--params=transfer.strategies.scratch.training.epochs=150")
    checkpoints = project / "data/06_models/checkpoints"
    killed = subprocess.Popen(
        kedro_command(*arguments), cwd=project, env=kedro_environment(), start_new_session=True, text=True
    )
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*scratch-seed*.pt")):  # the seeds' stack: seeds-together-scratch-seed0-…
        assert killed.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)  # at once: the checkpoint of the seed in training is there
    killed.wait()
    before = versions(project)

    resumed = kedro_run(project, *arguments)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = mlflow_runs(project)  # the killed run, its training's live run with its first epoch, then the resumed
    assert "RUNNING" not in {r.info.status for r in runs}
    (killed_parent,) = [
        r for r in runs if r.data.tags.get("headstart.pid") == str(killed.pid) and r.data.tags.get("kedro.run_id")
    ]
    assert killed_parent.info.status == "KILLED"
    children = runs_below(runs, killed_parent.info.run_id, "training")  # below its strategy's run, killed too
    assert children and {r.info.status for r in runs_below(runs, killed_parent.info.run_id)} == {"KILLED"}
    assert mlflow.MlflowClient().get_metric_history(children[0].info.run_id, "train_loss")  # kept what it finished
    logged = resumed.stdout + resumed.stderr
    assert "Resuming from" in logged and "scratch-seed" in logged
    uninterrupted = kedro_run(project, *arguments)  # the checkpoints are gone: trains from the start
    assert uninterrupted.returncode == 0 and "Resuming from" not in uninterrupted.stdout + uninterrupted.stderr

    evaluations = sorted((project / "data/08_reporting/scratch/test_evaluation.json").glob("*/test_evaluation.json"))
    resumed_result, uninterrupted_result = (json.loads(p.read_text())["seeds"] for p in evaluations[-2:])
    for a, b in zip(resumed_result, uninterrupted_result, strict=True):
        assert a["seed"] == b["seed"] and a["accuracy"] == b["accuracy"]
        assert a["nll"] == pytest.approx(b["nll"], rel=1e-6)
    assert len(versions(project)) == len(before) + 2
    every_version_loads(project)


def test_a_truncated_source_model_file_is_refused_naming_the_file_before_training(project):
    (weights,) = sorted((project / "data/06_models/source_model").glob("*/source_model/source.safetensors"))[-1:]
    intact = weights.read_bytes()
    weights.write_bytes(intact[:100])
    try:
        result = kedro_run(project, "--pipelines=transfer", SCRATCH)
    finally:
        weights.write_bytes(intact)
    assert result.returncode != 0
    assert f"{weights} or" in result.stdout + result.stderr and "missing, truncated or corrupt" in result.stderr


def test_a_full_disk_while_saving_a_model_keeps_no_half_written_version(project, monkeypatch):
    """The run itself, in this process, with the file system refusing the second file of the new version."""
    before = versions(project, "pixels_knn")
    real_open = LocalFileSystem._open

    def disk_full(self, path, mode="rb", *args, **kwargs):
        if "w" in mode and "pixels_knn/target_models" in str(path) and str(path).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", disk_full)
    monkeypatch.setattr(configured, "_loader", None)  # restored afterwards: this run's conf stays this run's
    monkeypatch.setattr(configured, "_project_path", None)
    bootstrap_project(project)
    failed = "could not be written .*No space left on device.*nothing of this version"
    with pytest.raises(DatasetError, match=failed), KedroSession.create(project_path=project, env="test") as session:
        session.run(pipeline_names=["transfer"], namespaces=["pixels_knn"])
    folder = project / "data/06_models/pixels_knn/target_models"
    assert versions(project, "pixels_knn") == before and not list(folder.rglob("*.partial"))
    every_version_loads(project, "pixels_knn")


def test_keeping_only_the_best_seed_stores_one_model_and_every_seed_still_has_its_run(project):
    before = versions(project, "pixels_knn")
    result = kedro_run(
        project, "--pipelines=transfer", "--namespaces=pixels_knn", "--params=transfer.keep_models=best_seed"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (new,) = set(versions(project, "pixels_knn")) - set(before)
    stored = sorted((project / "data/06_models/pixels_knn/target_models" / new / "target_models").glob("*.safetensors"))
    parent = [r for r in mlflow_runs(project) if "mlflow.parentRunId" not in r.data.tags][-1]
    children = runs_below(mlflow_runs(project), parent.info.run_id, "training")
    assert len(children) == 2 and len(stored) == 1
    (referring,) = [c for c in children if "model.file" in c.data.tags]
    assert Path(referring.data.tags["model.file"]) == stored[0]
    best = max(children, key=lambda c: c.data.metrics["validation_accuracy"])
    assert referring.data.metrics["validation_accuracy"] == best.data.metrics["validation_accuracy"]
    assert [c.data.tags["model.stored"] for c in children if c is not referring] == ["false"]


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on a free loopback port: a sqlite store, artifacts served from a local folder."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    environment = {**kedro_environment(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read().decode()[-3000:]
            time.sleep(0.5)
    yield uri
    server.terminate()
    server.wait(timeout=60)


def test_two_workers_log_to_one_tracking_server_under_the_dag_runs_parent(project, tracking_server, monkeypatch):
    """As two Airflow workers would: one parent run per DAG run, two `kedro run --namespaces=...` at once."""
    from headstart.orchestration import PARENT_RUN_VARIABLE, close_parent_run, open_parent_run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    parent = open_parent_run(project, "test", "retrain manual__1")
    strategies = ("scratch", "pixels_knn")
    before = {s: versions(project, s) for s in strategies}
    workers = [
        subprocess.Popen(
            kedro_command("--pipelines=transfer", f"--namespaces={strategy}"),
            cwd=project,
            env=kedro_environment(MLFLOW_TRACKING_URI=tracking_server, **{PARENT_RUN_VARIABLE: parent}),
            stderr=subprocess.PIPE,
            text=True,
        )
        for strategy in strategies
    ]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-3000:]
    close_parent_run(project, "test", parent)
    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment])
    assert client.get_run(parent).info.status == "FINISHED"
    tasks = {r.data.tags["kedro.namespaces"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent}
    assert tasks.keys() == set(strategies) and {r.info.status for r in tasks.values()} == {"FINISHED"}
    for strategy, task in tasks.items():
        trainings = runs_below(runs, task.info.run_id, "training")  # below the strategy's run
        assert sorted(r.data.tags["mlflow.runName"] for r in trainings) == [f"{strategy} seed {s}" for s in (0, 1)]
        assert all(Path(r.data.tags["model.file"]).exists() for r in trainings)  # each refers to its own file
        (new,) = set(versions(project, strategy)) - set(before[strategy])  # one new version, none overwritten
        assert task.data.tags[f"kedro.saved.{strategy}.target_models"] == new
        assert set(before[strategy]) <= set(versions(project, strategy))
        every_version_loads(project, strategy)
