"""The same comparison on a Dask cluster (a LocalCluster of two processes over loopback) logging to an
MLflow tracking server: the numbers equal the local workers' to the digit, and the server holds the
run with every training's child run, as the local run's sqlite store does."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, kedro_run, runs_below
from tests.test_faults import tracking_server  # noqa: F401 (a fixture: `mlflow server` on a loopback port)
from tests.test_run import mlflow_runs

pytestmark = pytest.mark.slow
COMPARED = ["scratch", "pixels_logistic", "pixels_knn", "finetune_top", "lwf"]  # lwf: a grid raced across jobs
TIMED = ("seconds", "minutes", "images_per_second")  # the clock's columns differ from run to run


def comparison(project: Path) -> pd.DataFrame:
    found = sorted((project / "data/08_reporting/transfer_comparison.csv").glob("*/transfer_comparison.csv"))
    table = pd.read_csv(found[-1])
    return table[[c for c in table.columns if not any(word in c for word in TIMED)]].set_index("strategy")


def trainings(runs: list, parent) -> dict[str, tuple[dict[str, float], bool]]:
    """By run name, each training's accuracies (its epochs' last, its test's) and whether it was logged
    live (a run opened by the training's start, tagged with its label, then fed each epoch)."""
    return {
        r.data.tags["mlflow.runName"]: (
            {k: v for k, v in r.data.metrics.items() if "accuracy" in k or "loss" in k},
            "training.label" in r.data.tags,
        )
        for r in runs_below(runs, parent.info.run_id, "training")
    }


def test_a_cluster_run_equals_the_local_workers_and_logs_to_the_tracking_server(tmp_path, tracking_server):  # noqa: F811
    project = copy_project(tmp_path)
    defined = yaml.safe_load((project / "conf/base/parameters_transfer.yml").read_text())["transfer"]["strategies"]
    with (project / "conf/test/parameters_transfer.yml").open("a") as conf:
        conf.write(f"  leave_out: [{', '.join(name for name in defined if name not in COMPARED)}]\n")
    made = kedro_run(project, "--pipelines=ingest,pretrain")
    assert made.returncode == 0, made.stderr[-3000:]

    local = kedro_run(project, "--pipelines=transfer", "--params=runtime.workers=2")
    assert local.returncode == 0, local.stderr[-3000:]
    here = comparison(project)
    on_cluster = kedro_run(
        project, "--pipelines=transfer", "--params=runtime.cluster.local=2", MLFLOW_TRACKING_URI=tracking_server
    )
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    assert "Cluster at tcp://127.0.0.1:" in on_cluster.stdout + on_cluster.stderr  # a LocalCluster on loopback
    there = comparison(project)
    assert sorted(there.index) == sorted(COMPARED)
    pd.testing.assert_frame_equal(there, here, check_exact=True)  # to the digit

    local_runs = mlflow_runs(project)
    (local_parent,) = [r for r in local_runs if r.data.tags.get("kedro.pipelines") == "transfer"]
    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("headstart")
    server_runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in server_runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED" and parent.data.params["runtime.cluster.local"] == "2"
    trained = trainings(server_runs, parent)
    assert trained == trainings(local_runs, local_parent) and len(trained) >= 2 * len(COMPARED)
    assert sum(live for _, live in trained.values()) >= 2 * 3  # scratch, finetune_top and lwf: 2 seeds each
    assert {r.info.status for r in runs_below(server_runs, parent.info.run_id)} == {"FINISHED"}
