import math

import pandas as pd
import pytest

from headstart.ml.metrics import compare_to_baseline
from headstart.ml.suite import ADVICE, PRIOR, audit_summary, suite_audit, task_outcome
from tests.ml.test_metrics import results


def comparison(accuracies: dict[str, list[float]], grid_images: dict[str, int]) -> pd.DataFrame:
    table = pd.DataFrame([row for name, values in accuracies.items() for row in results(name, values)])
    table["grid_images_seen"] = table["strategy"].map(grid_images)
    return compare_to_baseline(table, "scratch", reference_baselines=["pixels_logistic"])


ACCURACIES = {
    "scratch": [0.70, 0.72, 0.74],
    "pixels_logistic": [0.60, 0.62, 0.64],
    "feature_svm": [0.80, 0.84, 0.82],  # the measured best: 0.82
    "finetune_top": [0.79, 0.85, 0.80],  # 0.813, a noisy gap to the best: inside its interval
    "finetune_full": [0.75, 0.77, 0.79],  # 0.77: clearly below
    "l2_sp": [0.60, 0.60, 0.60],  # the worst
}
GRID = {name: 1000 for name in ACCURACIES}


def test_a_task_outcome_names_its_measured_best_and_who_is_inside_its_interval():
    outcome = task_outcome("digits", "about", comparison(ACCURACIES, GRID))
    assert outcome["best"] == "feature_svm" and outcome["best_accuracy"] == pytest.approx(0.82)
    assert outcome["within_best"] == "feature_svm, finetune_top" and outcome["best_baseline"] == "scratch"
    assert set(outcome["beat_best_baseline"].split(", ")) == {"feature_svm", "finetune_top", "finetune_full"}
    assert outcome["negative_transfer"] == "l2_sp"


def test_the_audit_scores_hits_normalised_regret_points_lost_and_cost_share_per_policy():
    advice = {"strategy": "finetune_top", "prior_strategy": "finetune_full", "race_images_seen": 300.0}
    audit = suite_audit({"digits": comparison(ACCURACIES, GRID)}, {"digits": advice}).set_index("policy")
    assert audit.loc[ADVICE, "hit"] and not audit.loc[PRIOR, "hit"]
    assert audit.loc[ADVICE, "cost_share"] == pytest.approx(300 / 6000)
    # normalised regret (best − chosen) / (best − worst): 0.82 − 0.77 over 0.82 − 0.60
    assert audit.loc[PRIOR, "normalised_regret"] == pytest.approx(0.05 / 0.22)
    assert audit.loc["always L2-SP", "normalised_regret"] == pytest.approx(1.0)
    assert audit.loc["always linear probe", "points_lost"] == pytest.approx(0.0, abs=1e-9)
    assert audit.loc["always linear probe", "cost_share"] == pytest.approx(1000 / 6000)
    summary = audit_summary(audit.reset_index()).set_index("policy")
    assert summary.loc[ADVICE, "hit_rate"] == 1.0 and summary.loc["always L2-SP", "hit_rate"] == 0.0


def test_a_policy_whose_strategy_the_task_did_not_compare_is_not_scored():
    accuracies = {name: values for name, values in ACCURACIES.items() if name != "l2_sp"}
    advice = {"strategy": "feature_svm", "prior_strategy": "feature_svm", "race_images_seen": 10.0}
    audit = suite_audit({"letters": comparison(accuracies, GRID)}, {"letters": advice}).set_index("policy")
    assert not audit.loc["always L2-SP", "measured"] and math.isnan(audit.loc["always L2-SP", "normalised_regret"])
    summary = audit_summary(audit.reset_index()).set_index("policy")
    assert summary.loc["always L2-SP", "tasks"] == 0 and summary.loc[ADVICE, "tasks"] == 1
