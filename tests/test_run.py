"""End to end: `kedro run` in a scratch copy of the project, as a user runs it."""

from pathlib import Path

import mlflow
import pytest
from PIL import Image

from headstart.ml.config import available_devices
from headstart.ml.training import resolve_device, trains_in_bf16
from headstart.pipelines.ingest.pipeline import MODEL_INPUTS
from tests.conftest import copy_project, kedro_run

pytestmark = pytest.mark.slow


def versions(project: Path) -> dict[str, set[str]]:
    root = project / "data" / "05_model_input"
    return {name: {p.name for p in (root / f"{name}.safetensors").glob("*")} for name in MODEL_INPUTS}


def mlflow_runs(project: Path):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["headstart"], output_format="list", order_by=["start_time ASC"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The project after two ingest runs (k=3, then k=5 labels per class)."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    for k in (3, 5):
        result = kedro_run(project, "--pipelines=ingest", f"--params=ingest.split.labels_per_class={k}")
        assert result.returncode == 0, result.stderr[-3000:]
    return project


def test_two_runs_keep_both_versions(project):
    assert all(len(found) == 2 for found in versions(project).values()), versions(project)
    assert len(list((project / "data/08_reporting/ingest_sample_grid.png").glob("*/*.png"))) == 2


def test_each_run_is_a_finished_mlflow_run_with_statistics_grid_and_versions(project):
    runs = mlflow_runs(project)
    assert [run.info.status for run in runs] == ["FINISHED", "FINISHED"]
    run = runs[-1]
    assert run.data.metrics["ingest_statistics.target_train.images"] == 50
    assert run.data.metrics["ingest_statistics.target_train.images_per_class.7"] == 5
    assert run.data.params["ingest.split.labels_per_class"] == "5"
    assert run.data.tags["kedro.pipelines"] == "ingest" and run.data.tags["kedro.run_id"]
    assert "git.commit" in run.data.tags
    on_this_machine = "bf16" if trains_in_bf16("auto", resolve_device("auto")) else "fp32"
    assert run.data.tags["training.precision"] == on_this_machine
    assert run.data.tags["kedro.saved.target_train"] in versions(project)["target_train"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"ingest_sample_grid.png", "ingest_statistics.json", "catalog_versions.json"} <= artifacts


def test_load_versions_reproduces_an_earlier_input(project):
    first = min(versions(project)["target_train"])
    result = kedro_run(
        project, "--pipelines=ingest", "--from-nodes=ingest.summarise_datasets", f"--load-versions=target_train:{first}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = mlflow_runs(project)[-1]
    assert run.data.metrics["ingest_statistics.target_train.images"] == 30  # the k=3 version
    assert run.data.tags["kedro.loaded.target_train"] == first


def test_bad_parameter_stops_before_any_node_and_saves_nothing(project):
    before = versions(project)
    result = kedro_run(project, "--pipelines=ingest", "--params=ingest.split.labels_per_class=0")
    assert result.returncode != 0
    assert "ingest.split.labels_per_class: Input should be greater than or equal to 1" in result.stderr
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown and "errors.pydantic.dev" not in shown  # one line per field, no links
    assert "register_new_resolver" not in shown  # Kedro's use of a deprecated OmegaConf call, silenced
    assert versions(project) == before


def test_a_device_this_machine_lacks_is_named_with_the_devices_found_before_any_node(project):
    result = kedro_run(project, "--pipelines=pretrain", "--params=runtime.device=cuda:7")
    assert result.returncode != 0
    assert f"runtime.device: cuda:7 is not available on this machine; devices found: {available_devices()[0]}" in (
        " ".join(result.stderr.split())
    )
    assert "Traceback" not in result.stderr and "Running node" not in result.stdout + result.stderr


def test_corrupt_image_names_the_file_marks_the_run_failed_and_keeps_versions(project, tmp_path):
    for cls in ("cat", "dog"):
        for i in range(6):
            (tmp_path / cls).mkdir(exist_ok=True)
            Image.new("L", (20, 20), 40 * i).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "zz_broken.png").write_bytes(b"not a png")
    before = versions(project)
    result = kedro_run(
        project, "--pipelines=ingest", f"--params=ingest.target.kind=image_folder,ingest.target.root={tmp_path}"
    )
    assert result.returncode != 0
    assert "zz_broken.png: unreadable or corrupt image" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr  # our message alone; the traceback is kept in the log file
    assert "InvalidDataError" in (project / "logs/last_error.log").read_text()
    assert versions(project) == before
    run = mlflow_runs(project)[-1]
    assert run.info.status == "FAILED" and "zz_broken.png" in run.data.tags["error"]
