"""The protocol every report states in a few lines: splits and sizes, labels used, seeds, tuning,
selection, interval and n, sign conventions. A table without them cannot be checked by a sceptic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.data.images import LabelledImages

SELECTION = (
    "Selection: within a training, the kept epoch is the one with the best validation accuracy (ties: lower "
    "validation loss), early stopping waits `min_epochs`; across a tuning grid, the candidate with the best mean "
    "validation accuracy over seeds is kept. The test split is used for nothing but the reported test metrics."
)


def split_sizes(splits: Mapping[str, LabelledImages]) -> str:
    parts = []
    for name, data in splits.items():
        counts = list(data.class_counts().values())
        per_class = f"{counts[0]}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"
        parts.append(f"{name} {len(data)} images ({per_class} per class)")
    return "Splits: " + ", ".join(parts) + "."


def labels_used(train: LabelledImages, validation: LabelledImages) -> str:
    classes = len(train.primary_classes)
    return (
        f"Labels used per class: {len(train) / classes:g} to train + {len(validation) / classes:g} to validate = "
        f"{(len(train) + len(validation)) / classes:g} ({len(train) + len(validation)} labelled images in all)."
    )


def interval(confidence: float, seeds: Sequence[int]) -> str:
    return (
        f"Intervals: {round(confidence * 100)}% Student-t over n = {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
        "an interval that leaves the metric's range is reported as computed and drawn clipped."
    )


def tuning_grid_text(grids: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """'scratch: lr_scale ∈ {0.3, 1, 3}; pixels_knn: neighbours ∈ {1, 3}' from each strategy's grid."""
    parts = []
    for strategy, grid in grids.items():
        names = list(dict.fromkeys(name for setting in grid for name in setting))
        tried = {name: dict.fromkeys(f"{setting[name]:g}" for setting in grid) for name in names}  # each once
        values = "; ".join(f"{name} ∈ {{{', '.join(tried[name])}}}" for name in names)
        parts.append(f"{strategy}: {values}")
    return (
        "Tuning (each strategy alike, on validation only; lr_scale multiplies the learning rates, or C for a "
        "linear classifier): " + "; ".join(parts) + "."
    )


def racing_text(eta: int | None, rungs: Mapping[str, Sequence[Mapping]] | None = None) -> str:
    """How the grid's candidates were cut (successive halving), and where each strategy's rungs fell."""
    if not eta:
        return "Racing: none; every candidate of every grid trained for the whole budget."
    text = (
        f"Racing: successive halving with η = {eta} (Jamieson & Talwalkar 2016) on each grid of a trained "
        f"procedure: every candidate trains the first E/{eta}^s epochs of its budget E, the best ⌈n/{eta}⌉ by mean "
        "validation accuracy over the seeds (ties: lower validation loss, then grid order) resume from their "
        f"checkpoints for {eta}× as many, until the survivors reach E; a survivor ends as the very model an "
        "uninterrupted training makes. Classifiers fitted once (linear, k-NN, TrAdaBoost) are not raced."
    )
    cuts = [
        f"{strategy}: "
        + ", ".join(
            f"after {r['epochs']} epoch{'s' * (r['epochs'] != 1)} kept {' / '.join(r['kept'])}" for r in strategy_rungs
        )
        for strategy, strategy_rungs in (rungs or {}).items()
        if strategy_rungs
    ]
    return text + (" Cuts: " + "; ".join(cuts) + "." if cuts else "")


def transfer_protocol(
    splits: Mapping[str, LabelledImages],
    grids: Mapping[str, Sequence[Mapping[str, float]]],
    seeds: Sequence[int],
    confidence: float,
    baseline: str,
    reference_baselines: Sequence[str],
    best: str,
    eta: int | None = None,
    rungs: Mapping[str, Sequence[Mapping]] | None = None,
) -> list[str]:
    return [
        "## Protocol",
        "",
        f"- {split_sizes(splits)}",
        f"- {labels_used(splits['train'], splits['validation'])}",
        f"- {interval(confidence, seeds)}",
        f"- {tuning_grid_text(grids)}",
        f"- {racing_text(eta, rungs)}",
        f"- {SELECTION}",
        f"- Baselines: `{baseline}` (the same architecture from random initialisation, trained by the same code) and "
        f"{', '.join(f'`{b}`' for b in reference_baselines)} (scikit-learn-style classifiers on the raw pixels), on "
        f"the same labels and seeds. Best baseline, by mean validation accuracy: `{best}`.",
        f"- Signs: gain_points = test accuracy minus `{baseline}`'s, in percentage points, paired by seed; "
        "gain_over_best_points the same against the best baseline; positive = better than the baseline. "
        f"negative_transfer: the whole gain interval lies below zero (against `{baseline}`); below_best_baseline: "
        "the same against the best baseline.",
    ]


# Appended with the reports below rather than added to the imports above, so that parallel edits of this
# module merge as two appends.


def multitask_report(
    comparison: pd.DataFrame,
    data_kind: str,
    train: LabelledImages,
    validation: LabelledImages,
    test: LabelledImages,
    seeds: Sequence[int],
    epochs: int,
    baseline: str,
) -> str:
    """The multi-task comparison in Markdown: its protocol, sign conventions and the table of methods."""
    return "\n".join(
        [
            "# Multi-task methods against single-task networks",
            "",
            "## Protocol",
            "",
            f"- Data ({data_kind}): train {len(train)}, validation {len(validation)}, "
            f"test {len(test)} images, each labelled for every task ({', '.join(train.labels)}) "
            "unless marked missing. Multi-digit pairs are drawn within the target train pool, the whole validation "
            "split and the test split respectively, so every method uses the same labels, validation included.",
            f"- {interval(0.95, seeds)}",
            f"- One budget for every method ({epochs} epochs, the same rates); no tuning grid. {SELECTION}",
            "",
            "## Results",
            "",
            f"Per task: mean test accuracy over {len(seeds)} seeds with its 95% t-interval. "
            f"Δm (Maninis et al. 2019): mean relative change of every task's accuracy and macro-F1 against "
            f"`{baseline}`, in %, **positive = worse**. Δp (LibMTL): per task the mean relative change "
            "of its metrics, then the mean over tasks, in %, **positive = better** (with the same metrics for every "
            "task, Δp = −Δm). Both are computed per seed (paired) and given with their 95% interval. Cost: parameters, "
            "training seconds and inference seconds on the test split, of one multi-task network vs all "
            "single-task networks.",
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def layer_sweep_report(
    sweep: pd.DataFrame,
    summary: pd.DataFrame,
    labels_per_class: int | str,
    seeds: Sequence[int],
    arms: Sequence[str],
    test_images: int,
) -> str:
    """The layer sweep in Markdown: its protocol and mean test accuracy [interval] per n (rows) and arm
    (columns, in `arms` order). `sweep` has a row per point (its labels_used), `summary` one per arm and n."""
    return "\n".join(
        [
            "# Layer-transfer sweep (Yosinski et al. 2014)",
            "",
            "## Protocol",
            "",
            f"- Labels: k = {labels_per_class} per class to train, drawn per seed from the target train "
            "pool, and the validation labels drawn from the validation split "
            "(ingest.split.validation_labels_per_class): "
            f"{sweep['labels_used'].mean():g} labels used per class. Test split: {test_images} images, for the "
            "reported accuracy only.",
            f"- {interval(0.95, seeds)}",
            f"- One budget and set of rates for every arm and n (no tuning grid). {SELECTION}",
            "- Arms: n blocks copied from the source and frozen (copied_frozen; their batch-norm statistics stay the "
            "source's), copied and fine-tuned (copied_finetuned), or randomly initialised and frozen (random_frozen, "
            "the control; its batch-norm statistics, never learned, are estimated on the target data).",
            "",
            summary.pivot(index="blocks", columns="arm", values="accuracy_text")[list(arms)]
            .reset_index()
            .to_markdown(index=False),
            "",
        ]
    )


def advice_summary_lines(advice: Mapping, ranking: pd.DataFrame, scores: Sequence[str]) -> list[str]:
    """The advice in a few lines for the log: the ranking by the chosen score and by each of `scores`,
    then the recommendation and why. `advice` is `advice.advice_record`'s dict."""
    ranking_text = ", ".join(f"{i + 1}. {name}" for i, name in enumerate(ranking["candidate"]))
    return [
        f"Candidate sources ranked by {advice['ranking_score']}: {ranking_text}",
        *(f"  by {score}: {' > '.join(ranking.sort_values(score)['candidate'])}" for score in scores),
        f"Advice ({advice['advice_seconds']:.1f} s for {advice['candidates']} candidates, no training on the "
        f"target): source {advice['candidate']}, {advice['strategy']}, freeze {advice['freeze_blocks']} of "
        f"{advice['total_blocks']} blocks. Why: {advice['reason']}",
    ]


def advice_report(
    advice: Mapping,
    ranking: pd.DataFrame,
    scores: pd.DataFrame,
    columns: Sequence[str],
    neighbours: int,
    folds: int,
    domain_images: int,
    untrained: Sequence[str] = (),
) -> str:
    """The advice in Markdown: the recommendation and why, the protocol of the scores, the ranking and
    every score per candidate and block (`columns` of `scores`). `untrained` candidates (random
    initialisations) have no pretraining time to state."""
    labelled = int(scores[scores["final_block"]]["images"].iloc[0])
    training_times = ", ".join(
        f"{name} {'not timed (made by pretrain or before timing)' if s is None else f'{s:.0f} s'}"
        for name, s in advice["candidate_train_seconds"].items()
        if name not in untrained
    )
    return "\n".join(
        [
            "# Advice before training: transferability, domain similarity and the size × similarity rule",
            "",
            f"**Recommendation**: source `{advice['candidate']}` (first by {advice['ranking_score']}), strategy "
            f"`{advice['strategy']}`, freeze the first {advice['freeze_blocks']} of "
            f"{advice['total_blocks']} blocks.",
            "",
            f"Why: {advice['reason']}.",
            "",
            "## Protocol",
            "",
            f"- Scores on the {labelled} labelled target images (training + validation labels: "
            f"{advice['labels_per_class']:g} per class); features of each block global-average-pooled, source "
            "batch-norm statistics. Higher is better for every score; LEEP and NCE read the source head's predictions "
            "over its own classes, so they exist for the final block only (empty elsewhere).",
            f"- k-NN accuracy: {neighbours}-nearest neighbours, stratified {folds}-fold "
            "cross-validation (fewer folds if a class has fewer labels). LogME: You et al. 2021; LEEP: Nguyen et "
            "al. 2020; NCE: Tran et al. 2019; H-score: Bao et al. 2019.",
            f"- Domain: {domain_images} source and {domain_images} unlabelled target-pool images; "
            "proxy A-distance 2(1 − 2ε) of a cross-validated logistic regression (0 = indistinguishable, "
            "2 = separable); MMD² unbiased, RBF kernel, median-heuristic bandwidth. Lower is more similar.",
            f"- Time: {advice['advice_seconds']:.1f} s for all {advice['candidates']} candidates (features, scores, "
            "domain measures) on this machine, beside no target training at all; candidate pretraining is counted "
            f"apart (reused from the catalog after the first run): {training_times} when first trained.",
            "",
            f"## Ranking of the candidate sources (1 = most transferable; recommendation by {advice['ranking_score']})",
            "",
            ranking.to_markdown(index=False),
            "",
            "## Scores per candidate and block",
            "",
            scores[list(columns)].to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def advice_verdict_line(verdict: Mapping, what: str) -> str:
    """One line on an advised choice (`advice.within_best`'s verdict) against the measured best."""
    if not verdict["measured"]:
        return f"- Advised {what} `{verdict['advised']}`: not measured (the best measured: `{verdict['best']}`)."
    return (
        f"- Advised {what} `{verdict['advised']}`: mean test accuracy {verdict['advised_accuracy']:.3f}; the "
        f"measured best is `{verdict['best']}` at {verdict['best_accuracy']:.3f} [{verdict['best_ci_low']:.3f}, "
        f"{verdict['best_ci_high']:.3f}]: {'the best' if verdict['is_best'] else 'not the best'}, "
        f"{'inside' if verdict['inside_best_interval'] else 'outside'} the best's interval."
    )


def advice_audit_report(
    correlations: pd.DataFrame,
    measured: pd.DataFrame,
    ranks: pd.DataFrame,
    advice: Mapping,
    strategy_verdict: Mapping,
    depth_verdict: Mapping,
    scores: Sequence[str],
    *,
    comparison_seconds: float,
    audit_seconds: float,
    finetune_strategy: str,
    probe_strategy: str,
    lr_scales: Sequence[float],
    seeds: Sequence[int],
    block_candidate: str,
) -> str:
    """The audit of the advice in Markdown. `measured`: per candidate (item) and measured way its mean test
    accuracy and `scores`; `ranks`: the candidates' measured ranks (rows) per measured way (columns); the
    verdicts are `advice.within_best`'s; `comparison_seconds` the training time of the comparison the
    advice anticipates, `audit_seconds` the audit's own; then the protocol it ran with."""
    source_text = ", ".join(
        f"{what} {int(ranks.loc[advice['candidate'], what])} of {len(ranks)}" for what in ranks.columns
    )
    return "\n".join(
        [
            "# Audit of the advice: scores and recommendation against measured accuracy",
            "",
            "## Protocol",
            "",
            f"- Across candidate sources: each candidate fine-tuned (`{finetune_strategy}`) and "
            f"linear-probed (`{probe_strategy}`) with the comparison's parameters, tuning grid "
            f"{lr_scales}, seeds {seeds}, on the default target labels; the score at the "
            "final block against the mean test accuracy over seeds.",
            f"- Across blocks: the per-block scores of `{block_candidate}` against the layer sweep's "
            "mean test accuracy at n = block for its copied_frozen and copied_finetuned arms (the sweep trains on "
            "the catalogued source model, the same as that candidate when pretrain's parameters are unchanged). "
            "LEEP and NCE need the source head, so they have no per-block values.",
            "- Kendall's τ-b (scipy.stats.kendalltau) with its two-sided p-value; n is the number of points "
            "ranked. With n = 3 or 4, even a perfect ranking has p = 0.33 or 0.083 (without ties): read the "
            "signs, not the significance.",
            "",
            "## Rank correlation (Kendall τ) of each score with measured test accuracy",
            "",
            correlations.to_markdown(index=False, floatfmt=".3f"),
            "",
            "## The advice against what was measured",
            "",
            f"- Advice: source `{advice['candidate']}`, `{advice['strategy']}`, freeze {advice['freeze_blocks']} "
            f"of {advice['total_blocks']} blocks ({advice['quadrant']}).",
            f"- Advised source `{advice['candidate']}`: its measured rank among the candidates (1 = best): "
            f"{source_text}.",
            advice_verdict_line(strategy_verdict, "strategy") + " (transfer comparison, default source model)",
            advice_verdict_line(depth_verdict, "freeze depth") + " (layer sweep, copied_frozen arm)",
            "",
            "## Cost",
            "",
            f"- Advice: {advice['advice_seconds']:.1f} s for {advice['candidates']} candidates (no target training).",
            f"- The transfer comparison it anticipates: about {comparison_seconds:.0f} s of training (each "
            "strategy's mean seconds × seeds × tuning-grid size).",
            f"- This audit's own training of the candidates: {audit_seconds:.0f} s.",
            "",
            "## Measured accuracy per candidate (mean over seeds)",
            "",
            measured[["item", "measured", "accuracy", *scores]].to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
