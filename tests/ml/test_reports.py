import math

import pandas as pd
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import compare_to_baseline
from headstart.ml.reports import (
    advice_audit_report,
    advice_report,
    advice_summary_lines,
    advice_verdict_line,
    labels_phrase,
    layer_sweep_report,
    learning_curve_verdict,
    multitask_report,
    multitask_verdict,
    verdict,
    with_decisions,
)
from headstart.ml.reports.advise import inseparable_lines
from tests.ml.test_metrics import results


def images(n, tasks=("left", "right")):
    return LabelledImages(
        torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
        {t: torch.arange(n) % 2 for t in tasks},
        {t: ["a", "b"] for t in tasks},
    )


def test_multitask_report_states_its_protocol_and_sign_conventions_before_the_table():
    comparison = pd.DataFrame(
        {
            "method": ["single", "hard"],
            "seeds": [3, 3],
            "delta_m": [0.0, -1.25],
            "delta_p": [0.0, 1.25],
            "delta_p_ci_low": [0.0, 0.5],
            "delta_p_ci_high": [0.0, 2.0],
        }
    )
    curves = pd.DataFrame(
        {"method": ["single"] * 7, "epoch": range(1, 8), "validation_accuracy": [0.2, 0.5, 0.7, 0.8, 0.8, 0.79, 0.8]}
    )
    comparison = with_decisions(
        comparison, {"hard": decision("better", 1.25, 0.5, 2.0)}, key="method", gain="delta_p", reference="baseline"
    )
    report = multitask_report(
        comparison,
        LOOKS,
        curves,
        "multi_digits",
        images(20),
        images(6),
        images(10),
        [0, 1, 2],
        7,
        "single",
        [0.3, 1.0],
        3,
    )
    assert report.startswith("# Multi-task methods against single-task networks\n\n## Verdict\n\nWith 20 training")
    assert "Better than it: `hard` (+1.2% [+0.5, +2.0], 95%, n = 3, look 1)" in report
    assert report.index("## Verdict") < report.index("## Protocol") < report.index("## Results")
    data = "- Data (multi_digits): train 20, validation 6, test 10 images, each labelled for every task (left, right)"
    assert data in report
    assert "Planned looks at 3 seeds." in report and "(7 epochs at most)" in report
    assert "the rates times 0.3, 1" in report and "successive halving (η = 3" in report
    assert (
        "`single`'s mean validation accuracy peaks at epoch 4 of 7 (0.800); over its last 5 epochs it spans 0.700–0.800"
        in report
    )
    assert "against `single`, in %, **positive = worse**" in report
    assert report.index("## Results") < report.index("| method") and "| hard     |       3 | better    |" in report
    assert report.endswith("|\n")


def test_layer_sweep_report_pivots_blocks_by_arm_in_the_order_given():
    sweep = pd.DataFrame({"labels_used": [6.0, 6.0, 8.0, 8.0]})
    summary = pd.DataFrame(
        {
            "arm": ["copied_frozen", "random_frozen", "copied_frozen", "random_frozen"],
            "blocks": [0, 0, 2, 2],
            "accuracy_text": ["0.1 [0, 1]", "0.2 [0, 1]", "0.3 [0, 1]", "0.4 [0, 1]"],
        }
    )
    report = layer_sweep_report(sweep, summary, 3, [0, 1], ["random_frozen", "copied_frozen"], 50)
    assert "k = 3 per class" in report and "7 labels used per class. Test split: 50 images" in report
    table = [[cell.strip() for cell in line.split("|")[1:-1]] for line in report.strip().splitlines()[-4:]]
    assert table[0] == ["blocks", "random_frozen", "copied_frozen"]
    assert table[2] == ["0", "0.2 [0, 1]", "0.1 [0, 1]"] and table[3] == ["2", "0.4 [0, 1]", "0.3 [0, 1]"]


ADVICE = {
    "candidate": "printed",
    "strategy": "feature_svm",
    "freeze_blocks": 3,
    "total_blocks": 3,
    "quadrant": "small_similar",
    "labels_per_class": 6.0,
    "reason": "because",
    "ranking_score": "logme",
    "advice_seconds": 1.25,
    "candidates": 2,
    "candidate_train_seconds": {"printed": None, "font": 12.4, "random_init": None},
}


def test_advice_report_leads_with_the_recommendation_and_times_only_pretrained_candidates():
    scores = pd.DataFrame(
        {"candidate": ["printed", "printed"], "block": [1, 2], "final_block": [False, True], "images": [30, 30]}
    )
    ranking = pd.DataFrame({"candidate": ["printed", "font"], "logme": [1, 2]})
    report = advice_report(ADVICE, ranking, scores, ["candidate", "block"], 5, 4, 100, ["random_init"])
    assert report.splitlines()[2] == (
        "**Recommendation**: source `printed` (first by logme), strategy `feature_svm`, freeze the first 3 of 3 blocks."
    )
    assert "Scores on the 30 labelled target images (training + validation labels: 6 per class)" in report
    assert "5-nearest neighbours, stratified 4-fold" in report and "100 source and 100 unlabelled" in report
    assert "- Time: 1.2 s for all 2 candidates" in report
    assert "printed not timed (made by pretrain or before timing), font 12 s when first trained." in report
    assert "random_init" not in report


def test_advice_summary_lines_rank_by_every_score_and_end_with_why():
    ranking = pd.DataFrame({"candidate": ["printed", "font"], "logme": [1, 2], "leep": [2, 1]})
    lines = advice_summary_lines(ADVICE, ranking, ["logme", "leep"])
    assert lines == [
        "Candidate sources ranked by logme: 1. printed, 2. font",
        "  by logme: printed > font",
        "  by leep: font > printed",
        "Advice (1.2 s for 2 candidates, no training on the target): source printed, feature_svm, freeze 3 of 3 "
        "blocks. Why: because",
    ]


MEASURED_BEST = {
    "advised": "feature_svm",
    "measured": True,
    "advised_accuracy": 0.8,
    "best": "finetune_top",
    "best_accuracy": 0.85,
    "best_ci_low": 0.75,
    "best_ci_high": 0.95,
    "is_best": False,
    "inside_best_interval": True,
}


def test_advice_verdict_line_says_whether_the_advised_choice_is_the_best_or_inside_its_interval():
    line = advice_verdict_line(MEASURED_BEST, "strategy")
    assert line == (
        "- Advised strategy `feature_svm`: mean test accuracy 0.800; the measured best is `finetune_top` at 0.850 "
        "[0.750, 0.950]: not the best, inside the best's interval."
    )
    outside = advice_verdict_line({**MEASURED_BEST, "inside_best_interval": False, "is_best": True}, "depth")
    assert outside.endswith(": the best, outside the best's interval.")
    unmeasured = {"advised": 2, "measured": False, "best": 3, "best_accuracy": 0.9}
    assert advice_verdict_line(unmeasured, "freeze depth") == (
        "- Advised freeze depth `2`: not measured (the best measured: `3`)."
    )


def test_advice_audit_report_gives_the_advised_sources_measured_rank_and_both_verdicts():
    correlations = pd.DataFrame({"across": ["candidates"], "measured": ["probe"], "score": ["logme"], "tau": [1.0]})
    measured = pd.DataFrame(
        {"item": ["printed", "font"], "measured": ["probe", "probe"], "accuracy": [0.7, 0.9], "logme": [1.0, 2.0]}
    )
    ranks = pd.DataFrame({"probe": [2.0, 1.0]}, index=pd.Index(["printed", "font"], name="item"))
    report = advice_audit_report(
        correlations,
        measured,
        ranks,
        ADVICE,
        MEASURED_BEST,
        {"advised": 3, "measured": False, "best": 2, "best_accuracy": 0.9},
        ["logme"],
        comparison_seconds=123.4,
        audit_seconds=56.6,
        finetune_strategy="finetune_top",
        probe_strategy="feature_svm",
        lr_scales=[1.0],
        seeds=[0, 1],
        block_candidate="printed",
    )
    assert "fine-tuned (`finetune_top`) and linear-probed (`feature_svm`)" in report
    assert "tuning grid [1.0], seeds [0, 1]" in report and "the per-block scores of `printed`" in report
    assert "its measured rank among the candidates (1 = best): probe 2 of 2." in report
    assert "inside the best's interval. (transfer comparison, default source model)" in report
    assert "- Advised freeze depth `3`: not measured (the best measured: `2`). (layer sweep, copied_frozen arm)" in (
        report
    )
    assert "about 123 s of training" in report and "own training of the candidates: 57 s." in report
    assert "- Advice: 1.2 s for 2 candidates" in report


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


LOOKS = {"design": "Planned looks at 3 seeds.", "looks": [{"seeds": 3, "cut": []}]}


def decision(verdict, gain, low, high, why=""):
    return {
        "verdict": verdict,
        "seeds": 3,
        "look": 1,
        "gain_percent": gain,
        "low": low,
        "high": high,
        "confidence": 0.95,
        "open_because": why,
    }


def test_the_multitask_verdict_reads_the_looks_decisions_on_delta_p_against_the_single_task_networks():
    def method(name, delta_p):
        return {"method": name, "seeds": 3, "delta_p": delta_p}

    table = pd.DataFrame(
        [method("single_task", 0.0), method("uncertainty", 1.2), method("equal", -2.5), method("pcgrad", 0.1)]
    )
    decisions = {
        "uncertainty": decision("better", 1.2, 0.3, 2.1),
        "equal": decision("worse", -2.5, -3.0, -1.0),
        "pcgrad": decision("open", 0.1, -2.5, 2.7, "seeds ran out at n = 3"),
    }
    table = with_decisions(table, decisions, key="method", gain="delta_p", reference="baseline")
    assert list(table["method"]) == ["uncertainty", "pcgrad", "single_task", "equal"]  # by Δp
    text = multitask_verdict(table, LOOKS, "single_task", "2000 training + 500 validation images")
    assert "Better than it: `uncertainty` (+1.2% [+0.3, +2.1], 95%, n = 3, look 1)" in text
    assert "Worse than it (negative transfer against it): `equal` (-2.5% [-3.0, -1.0]" in text
    assert "Open: `pcgrad` (+0.1% [-2.5, +2.7], 95%, n = 3, look 1; seeds ran out at n = 3)" in text
    assert "To decide the 1 open row(s), list more `multitask.seeds`" in text
    assert "`single_task` (+" not in text and "`single_task` (-" not in text


def test_the_advice_names_the_set_it_could_not_separate_or_says_it_separated_every_finisher():
    advice = {"strategy": "finetune_top", "race": {"seeds": [0, 1]}, "inseparable_confidence": 0.95}
    named = inseparable_lines(advice | {"inseparable": ["pixels_knn", "finetune_top"]})[0]
    assert named.startswith("**Not separated on validation**: `pixels_knn`, `finetune_top`, cheapest first")
    assert "at 95%, n = 2 seeds" in named
    alone = inseparable_lines(advice | {"inseparable": ["finetune_top"]})[0]
    assert alone.startswith("The race separated `finetune_top` from every other finisher")
    single = inseparable_lines(advice | {"race": {"seeds": [0]}, "inseparable": ["a", "finetune_top"]})[0]
    assert "with one seed there is no interval, so nothing is separated" in single
    assert inseparable_lines(advice) == []  # an advice made before it named a set
