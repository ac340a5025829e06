import math

import pandas as pd

from headstart.ml.metrics import compare_to_baseline
from headstart.ml.reports import labels_phrase, learning_curve_verdict, multitask_verdict, verdict
from tests.ml.test_metrics import results


def row(strategy, gain, low, high, role="transfer", seeds=3, negative_transfer=False):
    return {
        "strategy": strategy,
        "role": role,
        "seeds": seeds,
        "accuracy": 0.8 + gain / 100,
        "gain_over_best_points": gain,
        "gain_over_best_ci_low": low,
        "gain_over_best_ci_high": high,
        "negative_transfer": negative_transfer,
    }


def sentence_with(text: str, start: str) -> str:
    """The sentence of `text` that begins with `start`."""
    return next(s for s in text.split(". ") if s.startswith(start))


def test_the_verdict_sorts_strategies_by_where_the_interval_of_their_gain_over_the_best_baseline_lies():
    table = pd.DataFrame(
        [
            row("scratch", 0.0, 0.0, 0.0, role="best baseline"),
            row("pixels_knn", -4.0, -6.0, -2.0, role="baseline"),
            row("clear_win", 3.0, 1.0, 5.0),
            row("small_win", 1.5, 0.5, 2.5),
            row("hurts", -2.0, -3.0, -1.0, negative_transfer=True),
            row("noisy", 0.5, -1.0, 2.0),
            row("touches_zero", 1.0, 0.0, 2.0),
            row("one_seed", 2.0, math.nan, math.nan, seeds=1),
        ]
    )
    text = verdict(table, labels_phrase(10, 10, ["pixels_knn"]), 0.95)
    assert text.startswith(
        "With 10 labels per class to train + 10 to validate (20 per class in the budget; `pixels_knn` fitted on "
        "all 20), the best baseline (chosen on validation) is `scratch`, test accuracy 0.800"
    )
    assert "95% interval (n = 1, 3 seeds by row)" in text
    better = sentence_with(text, "Better than it")
    assert better.endswith("`clear_win` (+3.0 points [+1.0, +5.0]), `small_win` (+1.5 points [+0.5, +2.5])")
    assert sentence_with(text, "Worse than it").endswith("(negative transfer): `hurts` (-2.0 points [-3.0, -1.0])")
    indistinguishable = sentence_with(text, "Indistinguishable")
    assert "`noisy`" in indistinguishable and "`touches_zero`" in indistinguishable  # an interval ending at 0 spans it
    assert sentence_with(text, "Without an interval").endswith("`one_seed` (+2.0 points).")
    assert "`pixels_knn` (-" not in text  # a baseline is not a strategy of the verdict
    assert "Against `scratch` alone" not in text  # the best baseline is scratch: nothing more to say


def test_the_verdict_says_so_when_nothing_is_clear_and_names_negative_transfer_against_scratch_too():
    table = pd.DataFrame(
        [
            row("scratch", -5.0, -7.0, -3.0, role="baseline"),
            row("pixels_knn", 0.0, 0.0, 0.0, role="best baseline"),
            row("finetune", -1.0, -4.0, 2.0, negative_transfer=True),
        ]
    )
    text = verdict(table, labels_phrase(1, 1), 0.95)
    assert text.startswith("With 1 label per class to train + 1 to validate (2 per class in the budget), ")
    assert "No strategy beats it with an interval clear of zero." in text
    assert "None is below it with an interval clear of zero." in text
    assert text.endswith(
        "Against `scratch` alone (the table's negative_transfer), the interval lies below zero for `finetune`."
    )


def test_the_verdict_reads_a_comparison_as_compare_to_baseline_builds_it():
    table = pd.DataFrame(
        results("scratch", [0.70, 0.80, 0.90])
        + results("good", [0.75, 0.85, 0.95])
        + results("bad", [0.60, 0.71, 0.80])
        + results("noisy", [0.90, 0.60, 0.85])
    )
    text = verdict(compare_to_baseline(table), labels_phrase(3, 3), 0.95)
    assert sentence_with(text, "Better than it").endswith("`good` (+5.0 points [+5.0, +5.0])")
    assert "(negative transfer): `bad` (-9.7 points [" in text
    assert sentence_with(text, "Indistinguishable").endswith("`noisy` (-1.7 points [-51.9, +48.5]).")


def test_the_learning_curve_opens_with_one_verdict_per_budget_in_the_order_of_labels_used():
    rows = []
    for budget, k, scratch, transfer in (
        ("5", 5, [0.80, 0.82, 0.84], [0.80, 0.83, 0.83]),
        ("1", 1, [0.5, 0.6, 0.7], [0.6, 0.7, 0.8]),
    ):
        for strategy, accuracies in (
            ("scratch", scratch),
            ("pixels", [a - 0.1 for a in scratch]),
            ("finetune", transfer),
        ):
            for result in results(strategy, accuracies):
                rows.append({**result, "labels_per_class": budget, "k": k, "labels_used": 2 * k})
    lines = learning_curve_verdict(pd.DataFrame(rows), "scratch", ["pixels"], 0.95, ["pixels"])
    assert [line.split(":")[0] for line in lines] == ["- **k = 1**", "- **k = 5**"]
    assert (
        "1 label per class to train + 1 to validate (2 per class in the budget; `pixels` fitted on all 2)" in lines[0]
    )
    assert "Better than it, the interval clear of zero: `finetune` (+10.0 points [+10.0, +10.0])" in lines[0]
    assert "Indistinguishable from it (the interval spans zero): `finetune`" in lines[1]


def test_the_multitask_verdict_reads_delta_p_against_the_single_task_networks():
    def method(name, delta_p, low, high):
        return {"method": name, "seeds": 3, "delta_p": delta_p, "delta_p_ci_low": low, "delta_p_ci_high": high}

    table = pd.DataFrame(
        [
            method("single_task", 0.0, 0.0, 0.0),
            method("uncertainty", 1.2, 0.3, 2.1),
            method("equal", -2.0, -3.0, -1.0),
            method("pcgrad", 0.1, -0.5, 0.7),
        ]
    )
    text = multitask_verdict(table, "single_task", "2000 training + 500 validation images", 0.95)
    assert "Better, the interval clear of zero: `uncertainty` (+1.2 % [+0.3, +2.1])" in text
    assert "(negative transfer between the tasks): `equal` (-2.0 % [-3.0, -1.0])" in text
    assert "Indistinguishable from it (the interval spans zero): `pcgrad` (+0.1 % [-0.5, +0.7])" in text
    assert "`single_task` (+" not in text and "`single_task` (-" not in text
