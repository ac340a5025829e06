import math

import pandas as pd
import pytest

from headstart.ml.metrics import compare_to_baseline
from headstart.ml.reports.suite import suite_report
from headstart.ml.suite import (
    ADVICE,
    LOGME_PICK,
    PRIOR,
    audit_summary,
    domain_summary,
    leave_one_task_out,
    looks_outcome,
    race_calibration,
    suite_audit,
    task_outcome,
)
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


def test_the_looks_per_task_say_the_seeds_spent_and_each_open_row_with_its_seeds():
    rows = pd.DataFrame(
        {
            "strategy": ["scratch", "feature_svm", "finetune_top", "rkd", "dann"],
            "verdict": ["best baseline", "worse", "open", "open", "equivalent"],
            "seeds": [10, 3, 10, 5, 5],
        }
    )
    looks = looks_outcome(rows)
    assert looks == {"rows": 5, "row_seeds": 33, "most_seeds": 10, "open": "finetune_top (10), rkd (5)"}
    outcome = task_outcome("digits", "about", comparison(ACCURACIES, GRID))
    assert outcome["rows"] == 6 and outcome["row_seeds"] == 18 and outcome["most_seeds"] == 3


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


def test_leave_one_task_out_scores_each_task_with_the_variant_best_on_the_other_tasks():
    def audit(regrets: dict[str, float]) -> pd.DataFrame:
        def row(task: str, policy: str, regret: float) -> dict:
            return {"task": task, "policy": policy, "measured": True, "hit": regret == 0, "normalised_regret": regret}

        rows = [row(t, ADVICE, r) for t, r in regrets.items()] + [row(t, PRIOR, 1.0) for t in regrets]
        return pd.DataFrame(rows).assign(points_lost=0.0, cost_share=0.1)

    # `short` is perfect on a and b but poor on c and d; `full` is a little off on a and b, perfect on c, d
    short = audit({"a": 0.0, "b": 0.0, "c": 0.5, "d": 0.9})
    full = audit({"a": 0.2, "b": 0.2, "c": 0.0, "d": 0.0})
    held_out = leave_one_task_out({"short": short, "full": full}).set_index("task")
    # on the other tasks, short's mean regret is 0.47, 0.47, 0.3, 0.17 and full's 0.13 every time
    assert list(held_out["variant"]) == ["full"] * 4
    assert held_out["normalised_regret"].tolist() == pytest.approx([0.2, 0.2, 0.0, 0.0])
    summary = audit_summary(held_out.reset_index()).iloc[0]
    assert summary["policy"] == f"{ADVICE}, leave-one-task-out" and summary["hit_rate"] == 0.5
    # held out, a task's own result cannot choose its variant: d alone favours full, yet without d short
    # (0.0, 0.0, 0.1) beats full (0.2, 0.2, 0.0) and is chosen for d
    short = audit({"a": 0.0, "b": 0.0, "c": 0.1, "d": 0.9})
    assert leave_one_task_out({"short": short, "full": full}).set_index("task").loc["d", "variant"] == "short"
    # a tie goes to the earlier variant
    assert (leave_one_task_out({"full": full, "copy": full.copy()})["variant"] == "full").all()
    with pytest.raises(ValueError, match="same tasks"):
        leave_one_task_out({"short": short, "full": full[full["task"] != "d"]})


def test_logmes_pick_is_scored_where_the_comparison_trained_its_variant():
    grid = {**GRID, "finetune_top_font_family": 1000}
    accuracies = {**ACCURACIES, "finetune_top_font_family": [0.60, 0.61, 0.62]}
    picked = {"strategy": "feature_svm", "race_images_seen": 10.0, "score_picks": {"logme": "finetune_top_font_family"}}
    audit = suite_audit({"digits": comparison(accuracies, grid)}, {"digits": picked}).set_index("policy")
    assert audit.loc[LOGME_PICK, "chosen"] == "finetune_top_font_family" and not audit.loc[LOGME_PICK, "hit"]
    assert audit.loc[LOGME_PICK, "points_lost"] == pytest.approx(100 * (0.82 - 0.61))
    unpicked = {"strategy": "feature_svm", "race_images_seen": 10.0}  # an advice made before the score picks
    audit = suite_audit({"digits": comparison(ACCURACIES, GRID)}, {"digits": unpicked}).set_index("policy")
    assert not audit.loc[LOGME_PICK, "measured"]


def test_the_race_calibration_sets_each_kind_of_finishers_score_against_its_test_accuracy():
    race = [  # the comparison measured feature_svm 0.82, finetune_top 0.813, pixels_logistic 0.62
        {"strategy": "finetune_top", "source": "digits", "epochs": 40, "cut_in_race": False}
        | {"validation_accuracy": 0.90, "race_score": 0.83},
        {"strategy": "finetune_full", "source": "digits", "epochs": 20, "cut_in_race": True}  # cut: not scored
        | {"validation_accuracy": 0.99, "race_score": math.nan},
        {"strategy": "pixels_logistic", "source": None, "epochs": 0, "cut_in_race": False}
        | {"validation_accuracy": 0.58, "race_score": 0.58},
        {"strategy": "feature_svm", "source": "digits", "epochs": 0, "cut_in_race": False}
        | {"validation_accuracy": 0.85, "race_score": 0.85},
        {"strategy": "rkd", "source": None, "epochs": 40, "cut_in_race": False}  # not compared: not scored
        | {"validation_accuracy": 0.5, "race_score": 0.5},
    ]
    calibration = race_calibration({"digits": comparison(ACCURACIES, GRID)}, {"digits": {"race": {"candidates": race}}})
    calibration = calibration.set_index("kind")
    assert calibration["finishers"].to_dict() == {
        "classical reference (pixels)": 1,
        "classifier on frozen features": 1,
        "network": 1,
    }
    network = calibration.loc["network"]
    assert network["mean_race_score_minus_test"] == pytest.approx(0.83 - 0.8133, abs=1e-3)
    assert network["mean_best_epoch_minus_test"] == pytest.approx(0.90 - 0.8133, abs=1e-3)
    assert calibration.loc["classical reference (pixels)", "mean_race_score_minus_test"] == pytest.approx(-0.04)
    assert math.isnan(calibration.loc["classifier on frozen features", "mean_best_epoch_minus_test"])


def test_the_audit_scores_the_advices_set_beside_its_single_pick():
    # the pick misses (finetune_full, clearly below the best), but its set holds finetune_top, inside the
    # best's interval: a set hit of size 3
    advice = {
        "strategy": "finetune_full",
        "race_images_seen": 10.0,
        "inseparable": ["pixels_logistic", "finetune_top", "finetune_full"],
    }
    narrow = {"strategy": "finetune_full", "race_images_seen": 10.0, "inseparable": ["finetune_full"]}
    comparisons = {"a": comparison(ACCURACIES, GRID), "b": comparison(ACCURACIES, GRID)}
    audit = suite_audit(comparisons, {"a": advice, "b": narrow})
    rows = audit[audit["policy"] == ADVICE].set_index("task")
    assert not rows["hit"].any() and rows["set_hit"].tolist() == [True, False]
    assert rows["set_size"].tolist() == [3, 1]
    assert rows.loc["a", "set"] == "pixels_logistic, finetune_top, finetune_full"
    summary = audit_summary(audit).set_index("policy")
    assert summary.loc[ADVICE, "hit_rate"] == 0 and summary.loc[ADVICE, "set_hit_rate"] == 0.5
    assert summary.loc[ADVICE, "mean_set_size"] == 2.0 and math.isnan(summary.loc[PRIOR, "set_hit_rate"])
    # an advice made before it named a set: no set scored
    old = suite_audit({"a": comparison(ACCURACIES, GRID)}, {"a": {"strategy": "feature_svm", "race_images_seen": 1.0}})
    assert math.isnan(audit_summary(old).set_index("policy").loc[ADVICE, "set_hit_rate"])


def test_the_far_tasks_are_summarised_apart_from_the_near_ones_each_with_its_n():
    """On the near tasks the advice picks the best, on the far one the worst: each domain's row says so,
    the whole suite's averages them; flipping the far task's comparison flips the far row alone."""
    pick = {"strategy": "feature_svm", "race_images_seen": 60.0, "inseparable": ["feature_svm"]}
    advices = {task: pick for task in "abc"}
    flipped = {**ACCURACIES, "feature_svm": [0.60, 0.60, 0.60], "l2_sp": [0.80, 0.84, 0.82]}
    comparisons = {"a": comparison(ACCURACIES, GRID), "b": comparison(ACCURACIES, GRID), "c": comparison(flipped, GRID)}
    domains = {"a": "near", "b": "near", "c": "far"}
    audit = suite_audit(comparisons, advices, domains)
    assert audit.set_index(["task", "policy"]).loc[("c", ADVICE), "domain"] == "far"
    grouped = domain_summary(audit)
    assert list(grouped["domain"].unique()) == ["all", "near", "far"]
    advice = grouped[grouped["policy"] == ADVICE].set_index("domain")
    assert advice["tasks"].to_dict() == {"all": 3, "near": 2, "far": 1}
    assert advice.loc["near", "hit_rate"] == 1.0 and advice.loc["far", "hit_rate"] == 0.0
    assert advice.loc["all", "hit_rate"] == pytest.approx(2 / 3)
    assert advice.loc["far", "mean_normalised_regret"] == 1.0 and advice.loc["near", "mean_normalised_regret"] == 0
    assert advice.loc["far", "mean_points_lost"] == pytest.approx(22.0) and advice.loc["far", "set_hit_rate"] == 0.0
    assert advice.loc["far", "mean_cost_share"] == pytest.approx(60 / 6000)
    l2_sp = grouped[grouped["policy"] == "always L2-SP"].set_index("domain")
    assert l2_sp.loc["far", "hit_rate"] == 1.0 and l2_sp.loc["near", "hit_rate"] == 0.0
    # the far task's comparison flipped back: its row follows it, the near row does not move
    unflipped = domain_summary(suite_audit({**comparisons, "c": comparison(ACCURACIES, GRID)}, advices, domains))
    unflipped = unflipped[unflipped["policy"] == ADVICE].set_index("domain")
    assert unflipped.loc["far", "hit_rate"] == 1.0 and unflipped.loc["near"].equals(advice.loc["near"])
    # a suite of near tasks only has no far row; tasks without a domain are near
    assert list(domain_summary(suite_audit(comparisons, advices))["domain"].unique()) == ["all", "near"]


def test_the_suite_report_states_the_set_and_the_far_tasks_apart():
    advices = {
        "a": {"strategy": "feature_svm", "race_images_seen": 60.0, "inseparable": ["feature_svm", "finetune_top"]},
        "c": {"strategy": "l2_sp", "race_images_seen": 60.0, "inseparable": ["l2_sp"]},
    }
    comparisons = {"a": comparison(ACCURACIES, GRID), "c": comparison(ACCURACIES, GRID)}
    domains = {"a": "near", "c": "far"}
    audit = suite_audit(comparisons, advices, domains)
    tasks = pd.DataFrame([task_outcome(t, "about", comparisons[t], domains[t]) for t in comparisons])
    report = suite_report(tasks, audit, domain_summary(audit), pd.DataFrame())
    verdict = report.splitlines()[2]
    assert "Its set (the strategies its race could not separate from its pick) held a hit on 50%" in verdict
    assert "1.5 strategies on average, against 50% for the pick alone" in verdict
    assert "On the 1 far tasks the advice hit 0% (regret 1.000), on the 1 near ones 100% (0.000)" in verdict
    apart = report.split("## The audit, near and far tasks apart")[1].split("##")[0]
    assert "| far " in apart and "| near " in apart and "| all " not in apart
    assert "| c      | far " in report.split("## Per task")[1]
    looks = report.split("## The looks, per task")[1].split("##")[0]
    assert "| task   | domain   |   rows |   row_seeds |   most_seeds | open" in looks
