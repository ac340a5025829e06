"""Each training's child run is logged while it trains: a crash keeps every finished training and the
epochs of the one it stopped; a run left RUNNING by a killed process is marked KILLED."""

import subprocess

import mlflow
import pytest

from headstart.ml import progress
from headstart.ml.training import fit
from headstart.tracking import LiveRuns, end_runs_of_dead_processes, process_tags
from tests.ml.test_training import CONFIG
from tests.ml.test_transfer import tiny, toy_data


@pytest.fixture
def parent(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("test")
    with mlflow.start_run() as run:
        yield run
    while mlflow.active_run():
        mlflow.end_run()


def test_a_crash_keeps_the_finished_training_and_the_epochs_of_the_one_it_stopped(parent):
    images, labels = toy_data()
    live = LiveRuns(parent.info.run_id)

    def crash_in_epoch_two(event, label, payload):
        if label == "scratch seed 1" and event == "epoch" and payload["epoch"] == 2:
            raise MemoryError("the machine ran out of memory")

    with progress.listening(live), progress.listening(crash_in_epoch_two):
        fit(
            tiny(),
            (images, labels),
            (images, labels),
            CONFIG.model_copy(update={"epochs": 3, "label": "scratch seed 0"}),
        )
        with pytest.raises(MemoryError):
            fit(
                tiny(),
                (images, labels),
                (images, labels),
                CONFIG.model_copy(update={"epochs": 3, "label": "scratch seed 1"}),
            )
    live.end_open("FAILED")

    client = mlflow.MlflowClient()
    runs = {r.data.tags["mlflow.runName"]: r for r in client.search_runs([parent.info.experiment_id])}
    finished, stopped = runs["scratch seed 0"], runs["scratch seed 1"]
    strategy = runs["scratch"]  # the strategy's run, between the pipeline's and its trainings'
    assert strategy.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert finished.data.tags["mlflow.parentRunId"] == strategy.info.run_id and strategy.info.status == "FAILED"
    assert finished.info.status == "FINISHED" and stopped.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(finished.info.run_id, "train_loss")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(stopped.info.run_id, "train_loss")] == [1, 2]
    assert finished.data.params["fit.body_lr"] == str(CONFIG.body_lr)

    run_id, streamed = live.take("scratch seed 0")  # the final record goes into the same run, curves not again
    assert run_id == finished.info.run_id and streamed


def test_a_run_left_running_by_a_dead_process_is_marked_killed_and_a_live_ones_is_not(parent):
    dead = subprocess.Popen(["true"])
    dead.wait()
    client = mlflow.MlflowClient()
    orphan = client.create_run(parent.info.experiment_id, tags={**process_tags(), "headstart.pid": str(dead.pid)})
    ours = client.create_run(parent.info.experiment_id, tags=process_tags())
    assert end_runs_of_dead_processes(parent.info.experiment_id) == [orphan.info.run_id]
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(ours.info.run_id).info.status == "RUNNING"
