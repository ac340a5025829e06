"""A far task of the suite as a user runs it (`kedro suite --env test --tasks patch_rotation`): colour patches
of installed photographs as the target, the printed-digit source rendered in RGB at the same size, the
comparison and the advice, then the suite report marking the task far and the advice naming the set of
strategies its race could not separate. A few strategies only, so the run stays short."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from kedro.io import Version

from headstart.datasets.labelled_images import LabelledImagesDataset
from headstart.ml.suite import ADVICE
from tests.conftest import copy_project, kedro_environment
from tests.test_suite_run import latest

pytestmark = pytest.mark.slow
TASK = "patch_rotation"
KEPT = ["scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top"]


@pytest.fixture(scope="module")
def far_project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    strategies = yaml.safe_load((project / "conf/base/parameters_transfer.yml").read_text())["transfer"]["strategies"]
    suite_file = project / "conf/test/parameters_suite.yml"
    suite = yaml.safe_load(suite_file.read_text())
    suite["suite"]["tasks"][TASK]["overrides"] |= {
        "transfer": {"leave_out": [name for name in strategies if name not in KEPT]},
        "advise": {"race": {"strategies": KEPT}},
    }
    suite_file.write_text(yaml.safe_dump(suite, allow_unicode=True))
    command = [sys.executable, "-m", "kedro", "suite", "--env", "test", "--tasks", TASK]
    result = subprocess.run(command, cwd=project, env=kedro_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return project


def test_the_far_target_is_rgb_patches_labelled_by_rotation(far_project):
    folder = far_project / f"data/suite/{TASK}/05_model_input"

    def stored(name: str):
        return LabelledImagesDataset(filepath=str(folder / f"{name}.safetensors"), version=Version(None, None)).load()

    target, source = stored("target_train"), stored("source_train")
    assert target.primary_classes == ["0°", "90°", "180°", "270°"] and target.images.shape[1:] == (3, 32, 32)
    assert source.images.shape[1:] == (3, 32, 32)  # ingest.image applies to both: the grey digits, repeated
    assert (source.images[:, 0] == source.images[:, 1]).all() and not (target.images[:, 0] == target.images[:, 1]).all()
    comparison = pd.read_csv(latest(far_project / f"data/suite/{TASK}/08_reporting/transfer_comparison.csv"))
    assert set(comparison["strategy"]) == set(KEPT) and comparison["accuracy"].between(0, 1).all()


def test_the_suite_reports_the_task_as_far_and_the_advice_names_its_set_cheapest_first(far_project):
    advice = json.loads(latest(far_project / f"data/suite/{TASK}/08_reporting/advice.json").read_text())
    named = advice["inseparable"]
    assert advice["strategy"] in named and set(named) <= set(KEPT)
    prices = advice["race_estimated_seconds_by_strategy"]
    assert [prices[name] for name in named] == sorted(prices[name] for name in named)
    tasks = pd.read_csv(latest(far_project / "data/08_reporting/suite_tasks.csv"))
    assert tasks.set_index("task").loc[TASK, "domain"] == "far"
    audit = pd.read_csv(latest(far_project / "data/08_reporting/suite_audit.csv"))
    row = audit[audit["policy"] == ADVICE].iloc[0]
    assert row["domain"] == "far" and row["set_size"] == len(named) and row["set"] == ", ".join(named)
    metrics = json.loads(latest(far_project / "data/08_reporting/suite_metrics.json").read_text())
    assert metrics[f"set_hit_rate.far.{ADVICE}"] == metrics[f"set_hit_rate.{ADVICE}"] == float(row["set_hit"])
    report = latest(far_project / "data/08_reporting/suite_report.md").read_text()
    assert "Its set (the strategies its race could not separate from its pick)" in report
    race_report = latest(far_project / f"data/suite/{TASK}/08_reporting/advice.md").read_text()
    assert "cheapest first" in race_report or "separated" in race_report
