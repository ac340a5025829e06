"""A pipeline run before its inputs exist stops at once: one line per missing data set, no traceback."""

import pytest

from tests.conftest import copy_project, kedro_run

pytestmark = pytest.mark.slow


def test_a_study_on_a_fresh_clone_says_which_pipeline_makes_its_inputs(tmp_path):
    project = copy_project(tmp_path)
    result = kedro_run(project, "--pipelines=learning_curve")
    assert result.returncode == 1
    assert "Error: this run needs data that does not exist yet:" in result.stderr
    assert "target_train_pool: not made yet; run `kedro run --pipelines=ingest`" in result.stderr
    assert "source_model: not made yet; run `kedro run --pipelines=pretrain`" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (project / "mlruns" / "mlflow.db").exists()  # stopped before an MLflow run opened

    result = kedro_run(project, "--pipelines=predict", f"--params=predict_images={tmp_path / 'nowhere'}")
    assert (
        result.returncode == 1
        and f"images_to_predict: an input you provide, not found at {tmp_path / 'nowhere'}" in result.stderr
    )
