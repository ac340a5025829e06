import math

import pandas as pd
import pytest

from headstart.ml.metrics import compare_to_baseline, selective_prediction_table, t_interval, with_calibration
from headstart.ml.reports import tuning_grid_text


def test_t_interval_of_three_seeds_uses_t_4_303():
    mean, low, high = t_interval([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    assert high - mean == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert math.isnan(t_interval([0.5])[1])


def results(strategy, accuracies, validation=None):
    return [
        {
            "strategy": strategy,
            "seed": seed,
            "accuracy": a,
            "macro_f1": a,
            "nll": 1.0,
            "trainable_parameters": 10,
            "train_seconds": 1.0,
            "validation_accuracy": a
            if validation is None
            else (validation[seed] if isinstance(validation, list) else validation),
        }
        for seed, a in enumerate(accuracies)
    ]


def test_gain_is_paired_by_seed_and_negative_transfer_needs_the_whole_interval_below_zero():
    table = pd.DataFrame(
        results("scratch", [0.70, 0.80, 0.90])
        + results("good", [0.75, 0.85, 0.95])
        + results("bad", [0.60, 0.71, 0.80])
        + results("noisy", [0.90, 0.60, 0.85])
    )
    comparison = compare_to_baseline(table).set_index("strategy")
    assert comparison.loc["good", "gain_points"] == pytest.approx(5.0)
    assert comparison.loc["good", "gain_ci_low"] == pytest.approx(5.0)  # the same gain at every seed: no spread
    assert comparison.loc["bad", "negative_transfer"]
    assert not comparison.loc["noisy", "negative_transfer"]  # interval straddles zero
    assert not comparison.loc["good", "negative_transfer"]
    # the measured top is `good` (mean 0.85): `noisy` (0.783) is within its paired interval, `bad` and `scratch` are not
    assert comparison["within_top"].to_dict() == {"scratch": False, "good": True, "bad": False, "noisy": True}
    assert comparison.loc["scratch", "gap_to_top_points"] == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="baseline strategy 'scratch' has no results"):
        compare_to_baseline(table[table["strategy"] != "scratch"])


def test_the_best_baseline_is_chosen_on_validation_never_on_test():
    """`pixels` is best on the test split but worst on validation: the gain is read against `scratch`."""
    table = pd.DataFrame(
        results("scratch", [0.70, 0.72, 0.74], validation=0.8)
        + results("pixels", [0.90, 0.91, 0.92], validation=0.5)
        + results("transfer", [0.80, 0.82, 0.84], validation=0.9)
    )
    comparison = compare_to_baseline(table, "scratch", reference_baselines=["pixels"]).set_index("strategy")
    assert comparison.loc["scratch", "role"] == "best baseline" and comparison.loc["pixels", "role"] == "baseline"
    assert comparison.loc["transfer", "gain_over_best_points"] == pytest.approx(10.0)
    assert not comparison.loc["transfer", "below_best_baseline"]
    # The same results with the validation ranking reversed: now `pixels` is the reference.
    table.loc[table["strategy"] == "pixels", "validation_accuracy"] = 0.95
    comparison = compare_to_baseline(table, "scratch", reference_baselines=["pixels"]).set_index("strategy")
    assert comparison.loc["pixels", "role"] == "best baseline"
    assert comparison.loc["transfer", "gain_over_best_points"] == pytest.approx(-9.0)
    assert comparison.loc["transfer", "below_best_baseline"]
    assert comparison.loc["transfer", "gain_points"] == pytest.approx(10.0)  # against scratch, unchanged


def test_a_tie_on_validation_goes_to_the_cross_validated_reference_not_to_scratch():
    """At 1 label per class, scratch's best-epoch accuracy on 10 validation images tied the reference's
    cross-validated one (0.567 each) and the first listed, scratch (test 0.525), became the best baseline."""
    table = pd.DataFrame(
        results("scratch", [0.43, 0.54, 0.61], validation=[0.6000000238, 0.5, 0.6000000238])  # float32, as torch gives
        + results("pixels_knn", [0.75, 0.70, 0.78], validation=[0.55, 0.6, 0.55])  # equal means, unequal float sums
        + results("transfer", [0.76, 0.67, 0.86], validation=0.9)
    )
    comparison = compare_to_baseline(table, "scratch", reference_baselines=["pixels_knn"]).set_index("strategy")
    assert comparison.loc["pixels_knn", "role"] == "best baseline"
    assert comparison.loc["transfer", "gain_points"] == pytest.approx(100 * (0.7633 - 0.5267), abs=0.01)


def test_the_tuning_text_names_each_value_of_a_setting_once_when_the_grid_crosses_two_settings():
    grid = [{"lr_scale": 1.0, "adaptation_weight": w} for w in (0.01, 0.1, 1.0)]
    text = tuning_grid_text({"l2_sp": grid, "scratch": [{"lr_scale": s} for s in (0.3, 1.0, 3.0)]})
    assert "l2_sp: lr_scale ∈ {1}; adaptation_weight ∈ {0.01, 0.1, 1}; scratch: lr_scale ∈ {0.3, 1, 3}." in text


def test_calibration_columns_take_the_nll_columns_place_with_t_intervals_over_seeds():
    rows = pd.DataFrame(results("scratch", [0.7, 0.8, 0.9]) + results("good", [0.75, 0.85, 0.95]))
    rows["ece"], rows["ece_calibrated"] = [0.10, 0.12, 0.14, 0.05, 0.05, 0.05], 0.02
    rows["nll_calibrated"], rows["aurc"] = 0.5, [0.01, 0.02, 0.03, 0.0, 0.0, 0.0]
    comparison = compare_to_baseline(rows)
    table = with_calibration(comparison, rows)
    assert list(table.columns).index("ece") == list(comparison.columns).index("nll")
    table = table.set_index("strategy")
    assert table.loc["scratch", "ece"] == pytest.approx(0.12)
    assert table.loc["scratch", "ece_ci_high"] - 0.12 == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert table.loc["good", "ece_ci_low"] == pytest.approx(0.05) and table.loc["good", "nll"] == 1.0
    assert {"nll_ci_low", "nll_calibrated_ci_high", "aurc_ci_low"} <= set(table.columns)
    assert with_calibration(comparison, rows.drop(columns=["ece", "ece_calibrated", "nll_calibrated", "aurc"])) is (
        comparison
    )  # evaluations made before: the table as it was


def test_selective_prediction_table_averages_each_coverage_over_seeds():
    table = selective_prediction_table([("a", [1.0, 0.8]), ("a", [1.0, 0.6]), ("b", [0.9, 0.7])], [0.5, 1.0])
    assert list(table["strategy"]) == ["a", "a", "b", "b"] and list(table["seeds"]) == [2, 2, 1, 1]
    assert list(table["accuracy"]) == pytest.approx([1.0, 0.7, 0.9, 0.7])
    assert table["accuracy_ci_low"].iloc[0] == 1.0 and math.isnan(table["accuracy_ci_low"].iloc[2])
