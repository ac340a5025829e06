import pandas as pd
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.reports import (
    advice_audit_report,
    advice_report,
    advice_summary_lines,
    advice_verdict_line,
    layer_sweep_report,
    multitask_report,
)


def images(n, tasks=("left", "right")):
    return LabelledImages(
        torch.zeros(n, 1, 8, 8, dtype=torch.uint8),
        {t: torch.arange(n) % 2 for t in tasks},
        {t: ["a", "b"] for t in tasks},
    )


def test_multitask_report_states_its_protocol_and_sign_conventions_before_the_table():
    comparison = pd.DataFrame({"method": ["single", "hard"], "delta_m": [0.0, -1.25]})
    report = multitask_report(comparison, "multi_digits", images(20), images(6), images(10), [0, 1, 2], 7, "single")
    assert report.startswith("# Multi-task methods against single-task networks\n\n## Protocol\n")
    data = "- Data (multi_digits): train 20, validation 6, test 10 images, each labelled for every task (left, right)"
    assert data in report
    assert "n = 3 seeds (0, 1, 2)" in report and "(7 epochs, the same rates)" in report
    assert "against `single`, in %, **positive = worse**" in report
    assert report.index("## Results") < report.index("| method") and "| hard     |    -1.250 |" in report
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
