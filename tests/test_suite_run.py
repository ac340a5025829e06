"""`kedro suite --env test`, as a user runs it: the test conf's two tasks of the suite (digits inverted, a
shifted domain; printed letters, another task), each its own comparison and advice in its own folder,
then the suite report with the advice audited across them. The two tasks run at once (suite.
concurrent_tasks 2), their trainings on one LocalCluster of 2 workers that the suite starts; a second
`kedro suite` of the same tasks trains nothing and writes the report again."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import Version

from headstart.datasets.labelled_images import LabelledImagesDataset
from headstart.ml.suite import LOGME_PICK
from tests.conftest import copy_project, kedro_environment, runs_below
from tests.test_run import mlflow_runs

pytestmark = pytest.mark.slow
TASKS = ("digits_inverted", "printed_letters")
SUITE = [sys.executable, "-m", "kedro", "suite", "--env", "test", "--params=runtime.workers=2"]


def latest(folder: Path) -> Path:
    return sorted(folder.glob(f"*/{folder.name}"))[-1]


@pytest.fixture(scope="module")
def suite_project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = subprocess.run(SUITE, cwd=project, env=kedro_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return project, result.stdout + result.stderr


def test_each_task_runs_its_own_target_in_its_own_folder(suite_project):
    project, log = suite_project
    assert "suite: 2 tasks (digits_inverted, printed_letters), 2 trained now" in log
    assert "The suite's workers: a LocalCluster of 2 processes" in log
    assert not (project / "data/05_model_input").exists()  # the default experiment's folder is untouched

    def target(task: str):
        path = project / f"data/suite/{task}/05_model_input/target_train.safetensors"
        return LabelledImagesDataset(filepath=str(path), version=Version(None, None)).load()

    inverted, letters = target("digits_inverted"), target("printed_letters")
    assert inverted.images.float().mean() > 128  # dark strokes on light: the UCI digits inverted
    assert letters.primary_classes == list("ABCDEFGHIJ")
    compared = {
        task: set(pd.read_csv(latest(project / f"data/suite/{task}/08_reporting/transfer_comparison.csv"))["strategy"])
        for task in TASKS
    }
    assert "tradaboost" in compared["digits_inverted"] and "tradaboost" not in compared["printed_letters"]
    assert "finetune_top_font_family" in compared["digits_inverted"]  # the task's override: every variant compared
    for task in TASKS:
        advice = json.loads(latest(project / f"data/suite/{task}/08_reporting/advice.json").read_text())
        raced = {row["strategy"] for row in advice["race"]["candidates"]}
        assert advice["strategy"] in raced <= compared[task] and advice["race_images_seen"] > 0


def test_the_suite_report_audits_the_advice_and_the_fixed_policies_on_every_task(suite_project):
    project, _ = suite_project
    tasks = pd.read_csv(latest(project / "data/08_reporting/suite_tasks.csv"))
    assert list(tasks["task"]) == list(TASKS) and tasks["best_accuracy"].between(0, 1).all()
    audit = pd.read_csv(latest(project / "data/08_reporting/suite_audit.csv"))
    assert len(audit) == 2 * 7 and audit.loc[audit["measured"], "normalised_regret"].between(0, 1).all()
    # LogME's pick is scored where the variants were compared (digits_inverted), not on printed_letters
    logme = audit[audit["policy"] == LOGME_PICK].set_index("task")
    advice = json.loads(latest(project / "data/suite/digits_inverted/08_reporting/advice.json").read_text())
    pick = advice["score_picks"]["logme"]  # None only when LogME ranks random_init first: no strategy starts there
    assert logme.loc["digits_inverted", "measured"] == (pick is not None)
    assert pick is None or logme.loc["digits_inverted", "chosen"] == pick
    assert not logme.loc["printed_letters", "measured"]
    report = latest(project / "data/08_reporting/suite_report.md").read_text()
    assert report.splitlines()[2].startswith("Over 2 tasks") and "inside the best's interval on" in report
    # the race's evidence set against what the comparison measured, per kind of finisher
    calibration = report.split("## The race's scores against the test accuracy")[1].split("##")[0]
    assert "| network " in calibration and "| classical reference (pixels) " in calibration
    metrics = json.loads(latest(project / "data/08_reporting/suite_metrics.json").read_text())
    assert -1 <= metrics["mean_race_score_minus_test.network"] <= 1  # and so in MLflow, beside the policies'
    runs = mlflow_runs(project)
    parent = [r for r in runs if r.data.tags.get("orchestrator") == "kedro suite"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    tasks_run = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert sorted(r.data.tags.get("suite.task", "report") for r in tasks_run) == [
        "digits_inverted",
        "printed_letters",
        "report",
    ]


def test_the_tasks_ran_at_once_and_their_trainings_nest_under_each_tasks_run(suite_project):
    project, _ = suite_project
    runs = mlflow_runs(project)
    (parent,) = [r for r in runs if r.data.tags.get("orchestrator") == "kedro suite"]
    task_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    task_runs = [r for r in task_runs if r.data.tags.get("suite.task")]
    assert max(r.info.start_time for r in task_runs) < min(r.info.end_time for r in task_runs)  # overlapping
    for run in task_runs:  # each driver's trainings, logged live from the shared cluster's workers
        assert runs_below(runs, run.info.run_id, "strategy") and runs_below(runs, run.info.run_id, "training")
        assert run.info.status == "FINISHED"


def test_the_tasks_share_one_folder_of_source_models(suite_project):
    """Both tasks keep the printed-digit source: its model and the advice's candidate sources sit in one
    folder of data/suite/_sources, none in a task's own."""
    project, _ = suite_project
    (shared,) = (project / "data/suite/_sources").iterdir()
    assert list((shared / "06_models/source_model").iterdir()) and list(
        (shared / "06_models/source_candidates").iterdir()
    )
    for task in TASKS:
        assert not (project / f"data/suite/{task}/06_models/source_model").exists()


def test_a_second_suite_of_the_same_tasks_trains_nothing(suite_project):
    project, _ = suite_project
    before = {r.info.run_id for r in mlflow_runs(project)}
    result = subprocess.run(SUITE, cwd=project, env=kedro_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    for task in TASKS:
        assert f"Suite task {task}: finished before with the same parameters" in log
    assert "suite: 2 tasks (digits_inverted, printed_letters), 0 trained now" in log
    new = [r for r in mlflow_runs(project) if r.info.run_id not in before]
    assert sorted(r.data.tags.get("orchestrator") or r.data.tags["kedro.pipelines"] for r in new) == [
        "kedro suite",
        "suite",
    ]  # the suite's run and its report's: no task's run, no training
