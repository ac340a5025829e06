import mlflow
import pytest

from headstart.tracking import flatten, log_dataset, numeric_leaves, resolve_tracking_uri


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("test")
    yield
    while mlflow.active_run():
        mlflow.end_run()


def test_child_runs_nest_under_the_active_run_with_per_epoch_metrics(tracking):
    with mlflow.start_run() as parent:
        records = [
            {
                "run_name": f"scratch seed {seed}",
                "params": {"strategy": "scratch", "seed": seed},
                "history": [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}],
                "metrics": {"test": {"accuracy": 0.5 + seed / 10}},
            }
            for seed in (0, 1)
        ]
        log_dataset("training_runs", records, {"mlflow": "child_runs"})
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert sorted(run.data.params["seed"] for run in children) == ["0", "1"]
    assert {run.data.metrics["test.accuracy"] for run in children} == {0.5, 0.6}
    history = mlflow.MlflowClient().get_metric_history(children[0].info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0)]


def test_flatten_and_numeric_leaves_make_mlflow_keys():
    data = {"a": {"b": 1, "c": "x", "d": True}, "class (7)": 2.5}
    assert flatten(data) == {"a.b": 1, "a.c": "x", "a.d": True, "class (7)": 2.5}
    assert numeric_leaves(data) == {"a.b": 1.0, "class _7_": 2.5}


def test_relative_sqlite_uri_is_taken_from_the_project_root_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        resolve_tracking_uri({"tracking_uri": "sqlite:///mlruns/mlflow.db"}, tmp_path)
        == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert (
        resolve_tracking_uri({"tracking_uri": "sqlite:///mlruns/mlflow.db"}, tmp_path) == "http://tracking.example:5000"
    )
