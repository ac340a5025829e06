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
    # the source and depth variants compared, so the race weighs them too; two learning rates, each raced
    transfer = project / "conf/test/parameters_transfer.yml"
    conf = transfer.read_text().replace("lr_scales: [1.0]", "lr_scales: [0.3, 1.0]", 1)
    transfer.write_text(conf + "  leave_out: []\n")
    with (project / "conf/test/parameters_advise.yml").open("a") as conf:
        conf.write("  race: {settings: grid}\n")
    result = kedro_run(project, "--pipelines=ingest,advise")  # advise reads what ingest saved, nothing else
    assert result.returncode == 0, result.stderr[-3000:]
    return project, result.stdout + result.stderr


def test_advise_prints_its_recommendation_and_the_ranking_of_every_candidate(advised):
    project, log = advised
    assert "Candidate sources ranked by knn_accuracy" in log and "Advice (" in log and "Why:" in log
    advice = json.loads(latest(project, "data/08_reporting/advice.json").read_text())
    assert sorted(advice["ranking"]) == ["font_family", "one_epoch", "printed_digits", "random_init"]
    assert advice["prior_candidate"] == advice["ranking"][0] and advice["quadrant"].startswith("small_")  # 6/class
    assert 0 <= advice["prior_freeze_blocks"] <= advice["total_blocks"] == 3
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
    ranked = finishers.sort_values(["race_score", "validation_loss", "order"], ascending=[False, True, True])
    assert advice["strategy"] == ranked["strategy"].iloc[0]  # the best race score; ties: lower loss, then order
    # a network is scored by the level it settled at (never above its best epoch), the others as tuned
    networks = finishers["epochs"] > 0
    assert (finishers.loc[networks, "race_score"] <= finishers.loc[networks, "validation_accuracy"] + 1e-9).all()
    assert (finishers.loc[~networks, "race_score"] == finishers.loc[~networks, "validation_accuracy"]).all()
    assert advice["race"]["settings"] == "grid" and advice["race"]["settled_epochs"] == 5
    # every setting of a network's grid raced as a candidate of its own; its row names its best
    assert "'setting': 0.0}" in log and "'setting': 1.0}" in log
    assert race.loc[networks, "setting"].str.match(r"lr_scale=(0\.3|1)(,|$)").all()
    assert advice["race_images_seen"] == pytest.approx(race["images_seen"].sum()) and advice["race_images_seen"] > 0
    assert f"Advice after the race on validation: {advice['strategy']}" in log
    # priced before it trained, beside the comparison's whole grid from the same timed steps
    assert "Cost of the advice's race" in log and "the race is at most" in log
    assert 0 < advice["race_estimated_seconds"] < advice["grid_estimated_seconds"]
    assert advice["race_estimated_share"] == pytest.approx(
        advice["race_estimated_seconds"] / advice["grid_estimated_seconds"]
    )
    report = latest(project, "data/08_reporting/advice.md").read_text()
    where = f"from source `{advice['candidate']}`" if advice["transfers"] else "(a baseline: transfer will not pay"
    assert report.startswith(f"# Advice: `{advice['strategy']}` {where}")


def test_the_race_weighs_sources_and_depths_and_the_advice_names_them(advised):
    project, _ = advised
    advice = json.loads(latest(project, "data/08_reporting/advice.json").read_text())
    race = pd.read_csv(latest(project, "data/08_reporting/strategy_race.csv")).set_index("strategy")
    starts = {name: (race.loc[name, "source"], race.loc[name, "freeze_blocks"]) for name in race.index}
    assert starts["finetune_top"] == ("printed_digits", 2) and starts["finetune_from_block_2"] == ("printed_digits", 1)
    assert starts["finetune_top_font_family"] == ("font_family", 2) and starts["feature_svm"] == ("printed_digits", 3)
    assert starts["finetune_top_one_epoch"][0] == "one_epoch"
    assert race.loc[["scratch", "pixels_knn"], "source"].isna().all()
    chosen = race.loc[advice["strategy"]]
    assert advice["transfers"] == (not pd.isna(chosen["source"]))
    assert advice["candidate"] == (chosen["source"] if advice["transfers"] else None)
    # LogME's pick: finetune_top from the source LogME ranks first (random_init has no such variant)
    variant = {"printed_digits": "finetune_top", "font_family": "finetune_top_font_family"}
    variant |= {"one_epoch": "finetune_top_one_epoch"}
    assert advice["score_picks"]["logme"] == variant.get(advice["first_by_score"]["logme"])
