import pandas as pd
import pytest

from headstart.ml.advice_audit import (
    audit_correlations,
    audit_points,
    audit_seconds,
    audit_verdicts,
    full_comparison_seconds,
    measured_ranks,
    rank_correlations,
    within_best,
)
from tests.ml.test_advice import scores_table


def test_rank_correlation_is_kendall_tau_with_its_n():
    table = pd.DataFrame(
        {"up": [1, 2, 3, 4], "down": [4, 3, 2, 1], "partial": [1, 2, None, 3], "accuracy": [0.1, 0.2, 0.3, 0.4]}
    )
    rows = {row["score"]: row for row in rank_correlations(table, ["up", "down", "partial"], "accuracy")}
    assert rows["up"]["tau"] == pytest.approx(1.0) and rows["up"]["n"] == 4
    assert rows["down"]["tau"] == pytest.approx(-1.0)
    assert rows["partial"]["n"] == 3  # a missing score leaves its row out


def test_advice_is_judged_against_the_best_and_its_interval():
    summary = pd.DataFrame(
        {
            "strategy": ["a", "b", "c"],
            "accuracy": [0.80, 0.90, 0.70],
            "accuracy_ci_low": [0.75, 0.78, 0.65],
            "accuracy_ci_high": [0.85, 0.95, 0.75],
        }
    )
    assert within_best(summary, "strategy", "b")["is_best"]
    inside = within_best(summary, "strategy", "a")
    assert not inside["is_best"] and inside["inside_best_interval"] and inside["best"] == "b"
    assert not within_best(summary, "strategy", "c")["inside_best_interval"]
    assert not within_best(summary, "strategy", "z")["measured"]


def test_the_full_comparison_costs_each_strategys_seconds_times_seeds_times_its_grid():
    comparison = pd.DataFrame({"strategy": ["a", "b", "gone"], "train_seconds": [2.0, 1.5, 100.0], "seeds": [3, 3, 3]})
    assert full_comparison_seconds(comparison, {"a": 2, "b": 1}) == 2.0 * 3 * 2 + 1.5 * 3 * 1


def test_the_audit_ranks_candidates_by_final_block_scores_and_blocks_without_head_scores():
    scores = scores_table()
    measurements = pd.DataFrame(
        {
            "candidate": ["near", "near", "far", "far"],
            "measured": ["probe"] * 4,
            "seed": [0, 1, 0, 1],
            "accuracy": [0.8, 0.9, 0.6, 0.7],
            "tuning_seconds": [4.0, 4.0, 6.0, 6.0],
        }
    )
    sweep = pd.DataFrame(
        {
            "arm": ["copied_frozen"] * 3 + ["random_frozen"] * 3,
            "blocks": [1, 2, 3] * 2,
            "accuracy": [0.5, 0.9, 0.8, 0.1, 0.1, 0.1],
            "accuracy_ci_low": [0.4, 0.8, 0.7] + [0.0] * 3,
            "accuracy_ci_high": [0.6, 1.0, 0.9] + [0.2] * 3,
        }
    )
    measured, points = audit_points(scores, measurements, sweep, "near")
    assert list(measured["item"]) == ["near", "far"] and list(measured["accuracy"]) == pytest.approx([0.85, 0.65])
    assert measured_ranks(measured)["probe"].to_dict() == {"far": 2.0, "near": 1.0}
    blocks = points[points["across"] == "blocks"]
    assert list(blocks["item"]) == [1, 2, 3] and set(blocks["measured"]) == {"copied_frozen"}
    assert blocks["leep"].isna().all() and blocks["knn_accuracy"].tolist() == [0.5, 0.9, 0.8]
    table = audit_correlations(points).set_index(["across", "score"])
    assert table.loc[("blocks", "knn_accuracy"), "tau"] == pytest.approx(1.0)
    assert ("blocks", "leep") not in table.index and table.loc[("candidates", "leep"), "n"] == 2
    assert audit_seconds(measurements) == 10.0
    strategy, depth = audit_verdicts(
        {"strategy": "x", "freeze_blocks": 3},
        pd.DataFrame({"strategy": ["x"], "accuracy": [0.5], "accuracy_ci_low": [0.4], "accuracy_ci_high": [0.6]}),
        sweep,
    )
    assert strategy["is_best"] and depth["best"] == 2 and depth["inside_best_interval"]
