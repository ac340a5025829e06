"""`kedro run --pipelines=advise` right after ingest, as a user runs it: no pretrain, no target training."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import copy_project, kedro_run

pytestmark = pytest.mark.slow


def latest(project: Path, relative: str) -> Path:
    return sorted((project / relative).glob(f"*/{Path(relative).name}"))[-1]


@pytest.fixture(scope="module")
def advised(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    result = kedro_run(project, "--pipelines=ingest,advise")  # advise reads what ingest saved, nothing else
    assert result.returncode == 0, result.stderr[-3000:]
    return project, result.stdout + result.stderr


def test_advise_prints_its_recommendation_and_the_ranking_of_every_candidate(advised):
    project, log = advised
    assert "Candidate sources ranked by knn_accuracy" in log and "Advice (" in log and "Why:" in log
    advice = json.loads(latest(project, "data/08_reporting/advice.json").read_text())
    assert sorted(advice["ranking"]) == ["font_family", "one_epoch", "printed_digits", "random_init"]
    assert advice["candidate"] == advice["ranking"][0] and advice["quadrant"].startswith("small_")  # 6 labels/class
    assert 0 <= advice["freeze_blocks"] <= advice["total_blocks"] == 3
    assert advice["candidate_epochs_trained"]["random_init"] == 0
    scores = pd.read_csv(latest(project, "data/08_reporting/transferability_scores.csv"))
    assert len(scores) == 4 * 3  # candidates × blocks
    final = scores[scores["final_block"]]
    assert final[["leep", "nce"]].notna().all().all() and scores[~scores["final_block"]]["leep"].isna().all()
    assert scores["knn_accuracy"].between(0, 1).all() and scores["proxy_a_distance"].le(2).all()
    report = latest(project, "data/08_reporting/advice.md").read_text()
    assert "**Recommendation**" in report and "| printed_digits" in report


def test_the_advice_races_the_priors_strategies_on_validation_and_says_what_that_cost(advised):
    project, log = advised
    advice = json.loads(latest(project, "data/08_reporting/advice.json").read_text())
    race = pd.read_csv(latest(project, "data/08_reporting/strategy_race.csv"))
    assert race["strategy"].iloc[0] == advice["prior_strategy"]  # the prior's choice first: it wins ties
    assert set(race["strategy"]) >= {"scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top"}
    finishers = race[~race["cut_in_race"]].assign(order=range((~race["cut_in_race"]).sum()))
    ranked = finishers.sort_values(["validation_accuracy", "validation_loss", "order"], ascending=[False, True, True])
    assert advice["strategy"] == ranked["strategy"].iloc[0]  # the best on validation; ties: lower loss, then order
    assert advice["race_images_seen"] == pytest.approx(race["images_seen"].sum()) and advice["race_images_seen"] > 0
    assert f"Advice after the race on validation: {advice['strategy']}" in log
    report = latest(project, "data/08_reporting/advice.md").read_text()
    assert report.startswith(f"# Advice: `{advice['strategy']}` from source `{advice['candidate']}`")
