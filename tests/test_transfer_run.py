"""End to end: the default `kedro run` (ingest → pretrain → sixteen strategies → comparison; multi-task)
on tiny data, then single stages and the studies on what it catalogued."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from headstart.datasets.labelled_images import LabelledImagesDataset
from headstart.ml.prediction import as_array, encode_png
from headstart.serving import image_frame
from tests.conftest import PROJECT_ROOT, copy_project, kedro_environment, kedro_run, runs_below
from tests.test_run import mlflow_runs

pytestmark = pytest.mark.slow
BASE = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_transfer.yml").read_text())["transfer"]
STRATEGIES = [name for name in BASE["strategies"] if name not in BASE["leave_out"]]  # the ones compared


def parent_runs(project: Path):
    return [r for r in mlflow_runs(project) if "mlflow.parentRunId" not in r.data.tags]


def latest(project: Path, relative: str) -> Path:
    return sorted((project / relative).glob(f"*/{Path(relative).name}"))[-1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = kedro_run(project)
    (project / "default_run.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return project


def looks_record(project: Path) -> dict:
    return json.loads(latest(project, "data/08_reporting/transfer_looks.json").read_text())


def test_default_run_writes_the_comparison_of_every_strategy_against_scratch(project):
    comparison = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv"))
    assert sorted(comparison["strategy"]) == sorted(STRATEGIES)
    assert list(comparison["gain_over_best_points"]) == sorted(comparison["gain_over_best_points"], reverse=True)
    looks = looks_record(project)  # the planned looks: 2 seeds each, then the third for the rows still open
    assert dict(zip(comparison["strategy"], comparison["seeds"])) == looks["seeds_trained"]
    assert set(comparison["seeds"]) <= {2, 3} and looks["seeds_listed"] == 3
    for name, decision in looks["decisions"].items():
        row = comparison.set_index("strategy").loc[name]
        assert row["verdict"] == decision["verdict"] and decision["seeds"] in (2, 3)
        assert decision["verdict"] != "better" or decision["low"] > 0  # a flipped rule would fail here
        assert decision["verdict"] != "worse" or decision["high"] < 0
    assert comparison.set_index("strategy").loc["scratch", "gain_points"] == 0
    assert comparison["accuracy"].between(0, 1).all() and comparison["negative_transfer"].dtype == bool
    markdown = latest(project, "data/08_reporting/transfer_comparison.md").read_text()
    assert "| finetune_full" in markdown and "paired by seed" in markdown
    assert "Labels used per class: 3 to train + 3 to validate = 6 (60 labelled images in all)." in markdown
    # lwf's grid of three was raced: one rung after 1 of its 3 epochs kept one candidate for the rest
    assert "Racing: successive halving with η = 3" in markdown and "Cuts: lwf: after 1 epoch kept lr_scale=" in markdown
    tuning = json.loads(latest(project, "data/08_reporting/lwf/test_evaluation.json").read_text())["tuning"]
    assert [len(rung["scores"]) for rung in tuning["rungs"]] == [3] and len(tuning["rungs"][0]["kept"]) == 1
    full_grid = 3 * 3 * 2 * 128  # 3 candidates × 3 epochs × 2 seeds × 4 batches of 32 (min_batches_per_epoch)
    assert tuning["grid_images_seen"] == (3 * 1 + 2) / 9 * full_grid
    rows = comparison.set_index("strategy")
    assert set(rows.loc[["scratch", "pixels_logistic", "pixels_knn"], "role"]) <= {"baseline", "best baseline"}
    assert (rows["role"] == "best baseline").sum() == 1 and (rows.loc["finetune_top", "role"] == "transfer")
    best = rows.index[rows["role"] == "best baseline"][0]
    assert (
        rows.loc[best, "validation_accuracy"]
        == rows.loc[["scratch", "pixels_logistic", "pixels_knn"], "validation_accuracy"].max()
    )
    assert rows.loc[best, "gain_over_best_points"] == 0
    assert markdown.index("## Verdict") < markdown.index("## Protocol")  # the report opens with its verdict
    assert (
        "With 3 labels per class to train + 3 to validate (6 per class in the budget; `pixels_logistic`, " in markdown
    )
    assert f"the best baseline (chosen on validation at the first look) is `{best}`" in markdown
    assert "Planned looks at 2, 3 seeds, error α = 0.05 per row" in markdown
    assert latest(project, "data/08_reporting/transfer_comparison.png").stat().st_size > 1000
    # calibration (ECE, NLL before / after temperature scaling) and selective prediction (AURC), with intervals
    assert {"ece", "ece_calibrated", "nll_calibrated", "aurc", "aurc_ci_high"} <= set(comparison.columns)
    assert comparison[["ece", "ece_calibrated", "aurc"]].stack().between(0, 1).all() and "Calibration:" in markdown
    for chart in ("transfer_reliability.png", "transfer_risk_coverage.png"):
        assert latest(project, f"data/08_reporting/{chart}").stat().st_size > 1000
    weights = latest(project, "data/06_models/finetune_full/target_models")
    assert sorted(p.name for p in weights.iterdir()) == [
        "seed_0.json",
        "seed_0.safetensors",
        "seed_1.json",
        "seed_1.safetensors",
    ]


def test_every_family_of_transfer_is_in_the_comparison_with_what_it_used_and_its_cost(project):
    rows = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv")).set_index("strategy")
    families = {"l2_sp", "lwf", "coral", "dann", "importance_weighting", "tradaboost", "rkd", "similarity_preserving"}
    assert families <= set(rows.index)
    assert rows.loc["coral", "uses"] == "source model + source images + unlabelled target"
    assert rows.loc["lwf", "uses"] == "source model + source model outputs"
    assert rows.loc["l2_sp", "uses"] == "source model" and rows.loc["scratch", "uses"] == "target labels only"
    assert rows.loc["pixels_knn", "uses"] == "raw pixels"
    # the same steps, but a source and an unlabelled target batch beside each target batch
    assert rows.loc["dann", "images_seen"] == 3 * rows.loc["l2_sp", "images_seen"]
    assert "adaptation_weight=" in rows.loc["importance_weighting", "tuned"]
    assert rows.loc["rkd", "uses"] == "source model embeddings + unlabelled target"
    assert rows.loc["rkd", "images_seen"] == 2 * rows.loc["scratch", "images_seen"]  # + an unlabelled batch a step
    assert rows.loc["tradaboost", "uses"] == "source model + source images"
    assert rows.loc["tradaboost", "tuned"] == "boosting_rounds=2"


def test_the_cost_estimate_comes_before_any_training_counts_every_one_and_is_in_mlflow(project):
    log = (project / "default_run.log").read_text()
    # train_tuned's line for each candidate × seed, the baselines' included; a raced survivor's resumption
    # (lwf's grid) logs it again, and is the same training
    # (the multi-task race's resumptions are its own: it logs no "Training seed")
    resumed = [line for line in log.splitlines() if "Resuming from" in line and "multitask-" not in line]
    later = sum(n - 2 for n in looks_record(project)["seeds_trained"].values())  # the later looks' seeds
    trained = log.count("Training seed") - len(resumed) - later
    assert trained > len(STRATEGIES) and log.index("Cost of the comparison") < log.index("Training seed")
    assert "Total: " in log and " trainings, about " in log
    parent = parent_runs(project)[0]
    assert parent.data.metrics["transfer_cost.estimated_trainings"] == trained
    assert parent.data.metrics["transfer_cost.estimated_seconds"] > 0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    assert {"transfer_cost.csv", "transfer_cost.json"} <= artifacts
    table = pd.read_csv(latest(project, "data/08_reporting/transfer_cost.csv"))
    assert list(table["strategy"]) == STRATEGIES and table["trainings"].sum() == trained


def test_each_strategy_and_seed_is_a_child_run_with_curves_weights_and_report(project):
    runs = mlflow_runs(project)
    parent = parent_runs(project)[0]
    children = runs_below(runs, parent.info.run_id, "training")
    dropped = [r for r in children if r.data.tags.get("tuning.kept") == "false"]
    names = {
        r.data.tags["mlflow.runName"] for r in children if r.data.tags.get("study") != "multitask" and r not in dropped
    }
    trained = looks_record(project)["seeds_trained"]
    assert names == {"pretrain source"} | {f"{s} seed {seed}" for s in STRATEGIES for seed in range(trained[s])}
    # lwf's raced grid: the two candidates cut after the rung keep their own live runs, marked so
    kept = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv")).set_index("strategy")
    assert len(dropped) >= 2 * 2 and all(r.data.tags["mlflow.runName"].startswith("lwf seed ") for r in dropped)
    assert not any(r.data.tags["mlflow.runName"].endswith(f"({kept.loc['lwf', 'tuned']})") for r in dropped)
    client = mlflow.MlflowClient()
    child = next(r for r in children if r.data.tags["mlflow.runName"] == "finetune_full seed 1")
    assert {
        "test_accuracy",
        "test_macro_f1",
        "test_nll",
        "trainable_parameters",
        "validation_accuracy",
    } <= child.data.metrics.keys()
    assert child.data.params["strategy"] == "finetune_full" and child.data.params["training.body_lr"] == "0.0001"
    assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 2  # one point per epoch
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert artifacts == {"confusion_matrix.png", "transfer_report.json"}  # the weights are stored once: the catalog's
    stored = Path(child.data.tags["model.file"])
    assert child.data.tags["model.dataset"] == "finetune_full.target_models" and stored.name == "seed_1.safetensors"
    assert stored == latest(project, "data/06_models/finetune_full/target_models") / "seed_1.safetensors"
    assert child.data.tags["model.version"] == parent.data.tags["kedro.saved.finetune_full.target_models"]
    report = mlflow.artifacts.load_dict(f"runs:/{child.info.run_id}/transfer_report.json")
    assert "head.weight" in report["reinitialised"] and "blocks.0.0.weight" in report["copied"]
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"transfer_comparison.csv", "transfer_comparison.md", "transfer_comparison.png"} <= parent_artifacts


def test_one_strategy_runs_alone_on_the_catalogued_source_model_and_splits(project):
    before = {p.name for p in (project / "data/06_models/scratch/target_models").iterdir()}
    result = kedro_run(project, "--pipelines=transfer", "--namespaces=finetune_full")
    assert result.returncode == 0, result.stderr[-3000:]
    parent = parent_runs(project)[-1]
    children = [r.data.tags["mlflow.runName"] for r in runs_below(mlflow_runs(project), parent.info.run_id, "training")]
    assert sorted(children) == ["finetune_full seed 0", "finetune_full seed 1"]
    assert len(list((project / "data/06_models/finetune_full/target_models").iterdir())) == 2
    assert {p.name for p in (project / "data/06_models/scratch/target_models").iterdir()} == before


def test_pretrain_reuses_the_catalogued_model_unless_told_to_retrain(project):
    result = kedro_run(project, "--pipelines=pretrain")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reusing the catalogued source model" in result.stderr + result.stdout
    assert parent_runs(project)[-1].data.metrics["pretrain_summary.reused"] == 1
    result = kedro_run(project, "--pipelines=pretrain", "--params=pretrain.retrain=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert parent_runs(project)[-1].data.metrics["pretrain_summary.reused"] == 0


def test_learning_curve_and_layer_sweep_run_on_the_catalogued_model_and_splits(project):
    result = kedro_run(project, "--pipelines=learning_curve,layer_sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    curve = pd.read_csv(latest(project, "data/08_reporting/learning_curve.csv"))
    assert len(curve) == 2 * 2 * 4  # budgets (1, 3) × seeds × (scratch, pixels_logistic, pixels_knn, feature_svm)
    assert set(curve["strategy"]) == {"scratch", "pixels_logistic", "pixels_knn", "feature_svm"}
    assert set(curve["k"]) == {1.0, 3.0} and set(curve["labels_used"]) == {2.0, 6.0}  # as many validation labels
    assert curve["validation_accuracy"].between(0, 1).all()
    assert set(curve[curve["strategy"] == "pixels_knn"]["tuned"]) <= {f"neighbours={n}" for n in (1, 3, 5, 9)}
    saved = pd.read_csv(latest(project, "data/08_reporting/learning_curve_labels_saved.csv"))
    assert list(saved["strategy"]) == ["feature_svm", "feature_svm"]
    assert set(saved["best_baseline_here"]) <= {"scratch", "pixels_logistic", "pixels_knn"}
    report = latest(project, "data/08_reporting/learning_curve_labels_saved.md").read_text()
    assert "labels_used = training + validation labels" in report and "best baseline (on validation)" in report
    assert (
        report.index("## Verdict") < report.index("- **k = 1**: With 1 label per class") < report.index("- **k = 3**")
    )
    sweep = pd.read_csv(latest(project, "data/08_reporting/layer_sweep.csv"))
    assert len(sweep) == 2 * 3 * 2  # n (0, 3) × arms × seeds
    at_zero = sweep[sweep["blocks"] == 0].groupby("seed")["accuracy"].nunique()
    assert (at_zero == 1).all()  # n = 0: the three arms are one model
    frozen = sweep[(sweep["blocks"] == 3) & (sweep["arm"] != "copied_finetuned")]
    assert (frozen["trainable_parameters"] < sweep[sweep["blocks"] == 0]["trainable_parameters"].min()).all()
    for name in ("learning_curve.png", "layer_sweep.png", "layer_sweep.md", "learning_curve_labels_saved.md"):
        assert latest(project, f"data/08_reporting/{name}").stat().st_size > 100
    parent = parent_runs(project)[-1]
    children = [r for r in mlflow_runs(project) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 16 + 2 + 6  # every curve point; the sweep trains n = 0 once per seed
    point = next(r for r in children if r.data.tags["mlflow.runName"] == "learning_curve feature_svm k=3 seed 1")
    assert point.data.params["labels_per_class"] == "3" and point.data.metrics["k"] == 3.0
    arm = next(r for r in children if r.data.tags["mlflow.runName"] == "layer_sweep random_frozen n=3 seed 0")
    assert arm.data.params["blocks"] == "3" and "test_accuracy" in arm.data.metrics
    # each study's estimate, made before its trainings, counted every one of them (workers: 1 in conf/test)
    log = result.stdout + result.stderr
    assert log.index("Cost of the learning curve (4 points)") < log.index("Training seed")
    assert parent.data.metrics["learning_curve_cost.estimated_trainings"] == log.count("Training seed")
    assert log.index("Cost of the layer sweep") < log.index("Layer sweep: ")
    assert parent.data.metrics["layer_sweep_cost.estimated_trainings"] == log.count("Layer sweep: ") == 8


def test_default_run_compares_multitask_methods_with_single_task_networks_on_partly_labelled_data(project):
    from kedro.io import Version

    from headstart.datasets.labelled_images import LabelledImagesDataset

    train = LabelledImagesDataset(
        filepath=str(project / "data/05_model_input/multitask_train.safetensors"), version=Version(None, None)
    ).load()
    assert list(train.labels) == ["left", "right"]
    assert (train.labels["right"] == -1).float().mean().item() == pytest.approx(0.3)  # conf/test hides 30%
    comparison = pd.read_csv(latest(project, "data/08_reporting/multitask_comparison.csv"))
    assert sorted(comparison["method"]) == sorted(
        [
            "single_task",
            "hard_equal",
            "hard_uncertainty",
            "hard_gradnorm",
            "hard_pcgrad",
            "hard_upgrad",
            "hard_famo",
            "soft",
        ]
    )
    assert list(comparison["delta_p"]) == sorted(comparison["delta_p"], reverse=True)  # sorted by gain
    # the planned looks (conf/test: seeds 0–2, looks at 2 and 3): decided methods stop at 2 seeds
    looks = json.loads(latest(project, "data/08_reporting/multitask_looks.json").read_text())
    rows = comparison.set_index("method")
    for method, decision in looks["decisions"].items():
        assert rows.loc[method, "verdict"] == decision["verdict"]
        assert rows.loc[method, "seeds"] == looks["seeds_trained"][method] == (3 if decision["look"] == 2 else 2)
    assert rows.loc["single_task", "verdict"] == "baseline" and rows.loc["single_task", "seeds"] == 3
    log = (project / "default_run.log").read_text()
    assert log.index("Cost of the multi-task comparison's first look") < log.index("Multi-task: single_task trained")
    assert (
        rows.loc["single_task", "delta_m"] == 0
        and rows.loc["single_task", "parameters"] == rows.loc["soft", "parameters"]
    )
    assert rows.loc["hard_equal", "parameters"] < rows.loc["single_task", "parameters"]
    assert np.allclose(comparison["delta_p"], -comparison["delta_m"])  # same metrics for every task
    report = latest(project, "data/08_reporting/multitask_comparison.md").read_text()
    assert "positive = worse" in report and report.index("## Verdict") < report.index("## Protocol")
    assert latest(project, "data/08_reporting/multitask_comparison.png").stat().st_size > 1000
    parent = parent_runs(project)[0]
    runs = [
        r
        for r in mlflow_runs(project)
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id and r.data.tags.get("study") == "multitask"
    ]
    assert len(runs) == sum(looks["seeds_trained"].values())  # methods × the seeds each got
    single = next(r for r in runs if r.data.tags["mlflow.runName"] == "multitask single_task seed 0")
    assert {
        "left.test_accuracy",
        "right.test_accuracy",
        "validation_accuracy_right",
        "train_loss_left",
    } <= single.data.metrics.keys()
    uncertainty = next(r for r in runs if r.data.tags["mlflow.runName"] == "multitask hard_uncertainty seed 1")
    assert mlflow.MlflowClient().get_metric_history(uncertainty.info.run_id, "weight_right")


def test_the_multitask_sweeps_measure_each_point_against_its_own_single_task_networks(project):
    result = kedro_run(project, "--pipelines=multitask_capacity,multitask_labels")
    assert result.returncode == 0, result.stderr[-3000:]
    capacity = pd.read_csv(latest(project, "data/08_reporting/multitask_capacity_sweep.csv"))
    assert list(zip(capacity["width_multiplier"], capacity["method"])) == [
        (0.5, "single_task"),
        (0.5, "hard_equal"),
        (2.0, "single_task"),
        (2.0, "hard_equal"),
    ]  # conf/test: × 0.5 and × 2 of widths [4, 8]
    rows = capacity.set_index(["width_multiplier", "method"])
    assert rows.loc[(2.0, "hard_equal"), "parameters"] > rows.loc[(0.5, "hard_equal"), "parameters"]
    assert set(capacity["verdict"]) <= {"baseline", "better", "worse", "equivalent", "open"}  # each point's looks
    printed = result.stdout + result.stderr
    assert printed.index("Cost of the capacity sweep's first looks") < printed.index("Multi-task capacity sweep")
    assert (capacity[capacity["method"] == "single_task"]["delta_m"] == 0).all()
    labels = pd.read_csv(latest(project, "data/08_reporting/multitask_labels_tasks_sweep.csv"))
    points = labels.drop_duplicates(["labels_per_task", "tasks", "trunk"])
    assert len(points) == 2 * 2 * 2 and set(points["trunk"]) == {"scratch", "source"}
    scratch = labels[labels["trunk"] == "scratch"]
    assert np.allclose(scratch["delta_m_vs_scratch"], scratch["delta_m"])  # their own baseline
    # the source trunk is the source model's body (conf/test: widths [8, 16, 16]), the scratch one [4, 8]
    by_trunk = labels[labels["method"] == "hard_equal"].groupby("trunk")["parameters"].max()
    assert by_trunk["source"] > 5 * by_trunk["scratch"]
    report = latest(project, "data/08_reporting/multitask_labels_tasks_sweep.md").read_text()
    assert report.index("## Verdict") < report.index("## Protocol") and "method × point pairs" in report
    assert latest(project, "data/08_reporting/multitask_capacity_sweep.png").stat().st_size > 1000
    studies = [r.data.tags.get("study") for r in mlflow_runs(project)]
    assert studies.count("multitask_capacity_sweep") == 2 * 2 * 2  # points × methods × seeds
    assert studies.count("multitask_labels_tasks_sweep") == 8 * 2 * 2


def test_promotion_makes_a_first_champion_then_keeps_it_unless_beaten(project):
    for expected in (True, False):
        result = kedro_run(project, "--pipelines=promote")
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(latest(project, "data/08_reporting/promotion_report.json").read_text())
        assert report["promoted"] is expected
    assert report["champion_version"] == 1 and "kept it" in report["reason"]  # same model: not better
    mlflow_runs(project)  # points MLflow at the project's store
    champion = mlflow.MlflowClient().get_model_version_by_alias("headstart-digits", "champion")
    assert int(champion.version) == 1 and float(champion.tags["test_accuracy"]) == pytest.approx(
        report["candidate_accuracy"], abs=1e-4
    )


def champion_uri(project: Path) -> str:
    """The registry's champion (promoted here first when the promotion test did not run before)."""
    mlflow_runs(project)
    try:
        mlflow.MlflowClient().get_model_version_by_alias("headstart-digits", "champion")
    except mlflow.exceptions.MlflowException:
        assert kedro_run(project, "--pipelines=promote").returncode == 0
    return "models:/headstart-digits@champion"


def catalogued_test_images(project: Path, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first catalogued test images as a user would hold them (H×W uint8), with their labels."""
    test = LabelledImagesDataset(filepath=str(latest(project, "data/05_model_input/target_test.safetensors"))).load()
    images, labels = test.primary_pairs()
    return [as_array(image) for image in images[:count]], labels[:count].numpy()


def test_champion_is_an_mlflow_model_with_its_lineage_that_mlflow_serves(project):
    uri = champion_uri(project)
    images, _ = catalogued_test_images(project, 2)
    loaded = mlflow.pyfunc.load_model(uri)
    predicted = loaded.predict(image_frame(images))
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("headstart-digits", "champion")
    tags = version.tags
    assert {"kedro.run_id", "git.commit", "strategy", "seed", "validation_accuracy", "test_accuracy"} <= tags.keys()
    assert {"data.target_train", "data.target_test", "data.source_model"} <= tags.keys()
    default = next(r for r in parent_runs(project) if r.data.tags["kedro.pipelines"] == "__default__")
    best_of_run = mlflow.pyfunc.load_model(f"runs:/{default.info.run_id}/best_model")
    assert list(best_of_run.predict(image_frame(images)).columns[:2]) == ["predicted_class", "probability"]
    logged = Path(mlflow.artifacts.download_artifacts(f"runs:/{default.info.run_id}/best_model"))
    assert not list(logged.rglob("*.safetensors"))  # it refers to the catalog's file; the champion carries its own
    assert list(Path(mlflow.artifacts.download_artifacts(uri)).rglob("*.safetensors"))
    assert (
        "Classifies 28-pixel grey images into 10 classes" in client.get_registered_model("headstart-digits").description
    )

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns' / 'mlflow.db'}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # an activated venv: uvicorn
    }
    command = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", uri, "--env-manager", "local"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port), "-w", "1"], cwd=project, env=environment, stderr=subprocess.PIPE
    )
    try:
        body = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[base64.b64encode(encode_png(i)).decode()] for i in images],
            }
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        for _ in range(120):
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())["predictions"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("mlflow models serve did not answer within two minutes")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [row["predicted_class"] for row in answer] == list(predicted["predicted_class"])
    np.testing.assert_allclose([row["probability"] for row in answer], predicted["probability"], rtol=1e-5)


def test_predict_pipeline_classifies_a_folder_with_the_champion_or_a_strategy(project, tmp_path):
    champion_uri(project)
    images, labels = catalogued_test_images(project, 12)
    folder = tmp_path / "new_images"
    (folder / "batch_2").mkdir(parents=True)
    for index, image in enumerate(images):
        (folder / ("batch_2" if index % 2 else "") / f"digit_{index:02d}.png").write_bytes(encode_png(image))
    (folder / "README.txt").write_text("not an image: skipped")
    (folder / "zz_inverted.png").write_bytes(encode_png(255 - images[0]))  # unlike any training image
    written = {}
    for chosen, version in (("champion", "champion v1"), ("finetune_top", "finetune_top seed")):
        result = kedro_run(project, "--pipelines=predict", f"--params=predict.model={chosen},predict_images={folder}")
        assert result.returncode == 0, result.stderr[-3000:]
        predictions = pd.read_csv(latest(project, "data/07_model_output/predictions.csv"))
        assert len(predictions) == 13 and predictions["model_version"].str.startswith(version).all()
        assert predictions["probability"].between(0, 1).all()
        # calibrated probabilities, the k-NN out-of-distribution score and its flag at the stored threshold
        new = ["ood_score", "out_of_distribution"]
        assert list(predictions.columns[1:6]) == ["predicted_class", "probability", "model_version", *new]
        assert predictions["out_of_distribution"].dtype == bool and predictions["ood_score"].notna().all()
        digits, inverted = predictions.iloc[:-1], predictions.iloc[-1]
        assert inverted["file"] == "zz_inverted.png" and inverted["ood_score"] > digits["ood_score"].median()
        assert digits["out_of_distribution"].mean() <= 0.5
        written[chosen] = predictions.set_index("file")
    assert len(list((project / "data/07_model_output/predictions.csv").iterdir())) == 2  # versioned: both kept
    runs = [r for r in mlflow_runs(project) if r.data.tags.get("kedro.pipelines") == "predict"]
    assert len(runs) == 2 and "kedro.loaded.finetune_top.target_models" in runs[-1].data.tags
    served = mlflow.pyfunc.load_model(champion_uri(project)).predict(image_frame(images))
    files = [f"{'batch_2/' if index % 2 else ''}digit_{index:02d}.png" for index in range(12)]
    assert list(written["champion"].loc[files, "predicted_class"].astype(str)) == list(served["predicted_class"])
    np.testing.assert_allclose(written["champion"].loc[files, "ood_score"], served["ood_score"], rtol=1e-5)
    assert list(written["champion"].loc[files, "out_of_distribution"]) == list(served["out_of_distribution"])


def test_a_strategy_added_in_conf_alone_is_trained_and_compared(project):
    """No code names the strategies: a new entry of `transfer.strategies` is a new namespace."""
    conf = project / "conf/test/parameters_transfer.yml"
    original = conf.read_text()
    added = yaml.safe_load(original)
    added["transfer"]["strategies"]["finetune_top_two"] = {
        "copy_blocks": "all",
        "freeze_blocks": -2,
        "training": {"epochs": 2},
    }
    conf.write_text(yaml.safe_dump(added))
    try:
        # its own nodes, the looks and the comparison, which read the other strategies' catalogued evaluations
        nodes = ",".join(
            [
                "finetune_top_two.train_target_models",
                "finetune_top_two.evaluate_target_models",
                "gather_first_look",
                "run_later_looks",
                "compare_strategies",
            ]
        )
        result = kedro_run(project, "--pipelines=transfer", f"--nodes={nodes}")
    finally:
        conf.write_text(original)
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv")).set_index("strategy")
    assert comparison.loc["finetune_top_two", "role"] == "transfer" and comparison.loc["finetune_top_two", "seeds"] >= 2
    trained = latest(project, "data/06_models/finetune_top_two/target_models")
    assert sorted(p.name for p in trained.iterdir())[:2] == ["seed_0.json", "seed_0.safetensors"]


def test_advice_audit_reads_scores_against_measured_accuracy_after_the_run_and_the_sweep(project):
    if not (project / "data/08_reporting/layer_sweep_summary.csv").exists():
        assert kedro_run(project, "--pipelines=layer_sweep").returncode == 0
    result = kedro_run(project, "--pipelines=advise,advice_audit")  # one run: advise's outputs feed the audit
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "Advised strategy" in log
    # the candidate with pretrain's own parameters is the catalogued source model, not trained again
    assert "Candidate printed_digits: reusing the catalogued model" in log
    audit = pd.read_csv(latest(project, "data/08_reporting/advice_audit.csv"))
    across = audit.set_index(["across", "measured", "score"])
    assert across.loc[("candidates", "finetune", "knn_accuracy"), "n"] == 4  # one point per candidate source
    assert across.loc[("blocks", "copied_frozen", "logme"), "n"] == 1  # the test sweep's blocks 0 and 3: block 3
    assert ("blocks", "copied_frozen", "leep") not in across.index  # no per-block value: it needs the source head
    measurements = pd.read_csv(latest(project, "data/08_reporting/candidate_measurements.csv"))
    assert len(measurements) == 4 * 2 * 3  # candidates × (fine-tune, probe) × seeds (transfer.seeds)
    report = latest(project, "data/08_reporting/advice_audit.md").read_text()
    assert "Kendall" in report and "Advised strategy" in report and "Advice:" in report
    assert latest(project, "data/08_reporting/advice_audit.png").stat().st_size > 1000


def test_the_notebook_runs_top_to_bottom_on_the_runs_outputs(project):
    """notebooks/explore_experiment.ipynb, every code cell in order as Jupyter runs them (its one magic
    left out, `display` as IPython's), on this project's default run: a renamed data set or column fails."""
    notebook = json.loads((PROJECT_ROOT / "notebooks" / "explore_experiment.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    script = "\n".join(line for cell in cells for line in cell.splitlines() if not line.startswith("%"))
    ran = subprocess.run(
        [sys.executable, "-c", "def display(shown):\n    print(type(shown).__name__)\n" + script],
        cwd=project,
        env={**kedro_environment(), "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "test images misclassified" in ran.stdout and "Figure" in ran.stdout


def test_each_strategy_is_a_run_of_its_own_with_its_summary_and_its_trainings_below_it(project):
    """The MLflow UI compares strategies side by side: one run per strategy under the pipeline's run,
    its row of the comparison as metrics and tags, its trainings nested below it; one filter
    (`tags.tuning.kept != 'false'`) hides the candidates its tuning dropped."""
    runs = mlflow_runs(project)
    parent = parent_runs(project)[0]
    strategies = {r.data.tags["strategy"]: r for r in runs_below(runs, parent.info.run_id, "strategy")}
    assert sorted(strategies) == sorted(STRATEGIES)
    comparison = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv")).set_index("strategy")
    for name, run in strategies.items():
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.metrics["gain_over_best_points"] == pytest.approx(comparison.loc[name, "gain_over_best_points"])
        assert run.data.tags["verdict"] == comparison.loc[name, "verdict"]
        assert run.data.metrics["seeds"] == comparison.loc[name, "seeds"]
        trainings = runs_below(runs, run.info.run_id)
        assert {r.data.tags["mlflow.runName"].split(" (")[0] for r in trainings} >= {f"{name} seed 0", f"{name} seed 1"}
    hidden = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string="tags.`tuning.kept` = 'false'",
        output_format="list",
    )
    assert hidden and all(r.data.tags["mlflow.parentRunId"] == strategies["lwf"].info.run_id for r in hidden)
