"""End to end: a user's photo folder whose classes are not the source's (the usual case with a
pretrained model) runs the default transfer comparison to its report; TrAdaBoost, which needs the
source's classes, is named as not applicable before any training and the rest runs."""

import json
from pathlib import Path

import pytest

from tests.conftest import copy_project, kedro_run
from tests.test_bring_your_own import rewrite, write_photos

pytestmark = pytest.mark.slow


def latest(project: Path, relative: str) -> Path:
    return sorted((project / relative).glob(f"*/{Path(relative).name}"))[-1]


def test_a_folder_of_other_classes_runs_to_its_report_without_tradaboost(tmp_path):
    project = copy_project(tmp_path)
    write_photos(project / "data/01_raw/photos", per_class=40, seed=2)  # cat, dog, owl: not digits
    rewrite(
        project / "conf/base/parameters_ingest.yml",
        "ingest",
        target={"kind": "image_folder", "root": "data/01_raw/photos"},
    )
    result = kedro_run(project, "--pipelines=ingest,pretrain,transfer")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    named, first_training = log.index("Not applicable, left out: tradaboost"), log.index("Training seed")
    assert named < first_training  # named by the estimate, before any training
    cost = json.loads(latest(project, "data/08_reporting/transfer_cost.json").read_text())
    assert list(cost["not_applicable"]) == ["tradaboost"]
    assert "tradaboost" not in cost["text"].split("Total:")[0]  # not priced
    markdown = latest(project, "data/08_reporting/transfer_comparison.md").read_text()
    assert "Not applicable here, left out before any training: `tradaboost` (the source's classes" in markdown
    assert "| tradaboost" not in markdown and "| coral" in markdown
