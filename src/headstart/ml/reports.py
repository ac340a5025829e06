"""The protocol every report states in a few lines: splits and sizes, labels used, seeds, tuning,
selection, interval and n, sign conventions. A table without them cannot be checked by a sceptic.
And the verdict every report opens with, in words, computed from its comparison table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.advice import advised_source
from headstart.ml.data.images import LabelledImages
from headstart.ml.metrics import compare_to_baseline

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
        "Tuning (each strategy alike, over its whole grid and every seed, never on the test split; lr_scale "
        "multiplies the learning rates, or C for a linear classifier): " + "; ".join(parts) + "."
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
    classical_folds: Mapping[str, int] | None = None,
    looks: Mapping | None = None,
) -> list[str]:
    return [
        "## Protocol",
        "",
        f"- {split_sizes(splits)}",
        f"- {labels_used(splits['train'], splits['validation'])}",
        f"- {looks['design'] if looks else interval(confidence, seeds)} {SEED_VARIANCE}",
        f"- {tuning_grid_text(grids)}",
        f"- {racing_text(eta, rungs)}",
        *([f"- {classical_tuning_text(classical_folds)}"] if classical_folds else []),
        f"- {SELECTION}",
        f"- Baselines: `{baseline}` (the same architecture from random initialisation, trained by the same code) and "
        f"{', '.join(f'`{b}`' for b in reference_baselines)} (scikit-learn classifiers on the raw pixels), on "
        f"the same labels and seeds. Best baseline, by mean validation accuracy: `{best}`.",
        f"- Signs: gain_points = test accuracy minus `{baseline}`'s, in percentage points, paired by seed; "
        "gain_over_best_points the same against the best baseline; positive = better than the baseline. "
        f"negative_transfer: the whole gain interval lies below zero (against `{baseline}`); below_best_baseline: "
        "the same against the best baseline.",
    ]


def plateau_text(curves: pd.DataFrame, method: str, last: int = 5) -> str:
    """Where `method`'s mean validation curve ends: its best epoch and how much its last epochs moved."""
    curve = curves[curves["method"] == method].sort_values("epoch")
    if curve.empty:
        return ""
    accuracy = curve["validation_accuracy"].to_numpy()
    best = int(curve["epoch"].iloc[accuracy.argmax()])
    tail = accuracy[-last:]
    return (
        f"`{method}`'s mean validation accuracy peaks at epoch {best} of {int(curve['epoch'].max())} "
        f"({accuracy.max():.3f}); over its last {len(tail)} epochs it spans {tail.min():.3f}–{tail.max():.3f} "
        "(multitask_validation_curves.png)."
    )


def multitask_report(
    comparison: pd.DataFrame,
    looks: Mapping,
    curves: pd.DataFrame,
    data_kind: str,
    train: LabelledImages,
    validation: LabelledImages,
    test: LabelledImages,
    seeds: Sequence[int],
    epochs: int,
    baseline: str,
    lr_scales: Sequence[float] = (1.0,),
    racing_eta: int | None = None,
) -> str:
    """The multi-task comparison in Markdown: its verdict, protocol, sign conventions and the table of methods."""
    labels = f"{len(train)} training + {len(validation)} validation images (tasks: {', '.join(train.labels)})"
    return "\n".join(
        [
            "# Multi-task methods against single-task networks",
            "",
            "## Verdict",
            "",
            multitask_verdict(comparison, looks, baseline, labels),
            "",
            "## Protocol",
            "",
            f"- Data ({data_kind}): train {len(train)}, validation {len(validation)}, "
            f"test {len(test)} images, each labelled for every task ({', '.join(train.labels)}) "
            "unless marked missing. Multi-digit pairs are drawn within the target train pool, the whole validation "
            "split and the test split respectively, so every method uses the same labels, validation included.",
            f"- {looks['design']} {SEED_VARIANCE}",
            f"- One budget for every method ({epochs} epochs at most). Every method, `{baseline}` included, is tuned "
            f"on validation only: its grid is the rates times {', '.join(f'{x:g}' for x in lr_scales)}, and its "
            "own settings where conf lists them (`tune`), each candidate over every seed, the best mean validation "
            "accuracy kept (column `tuned`); "
            + (
                f"the grid is raced by successive halving (η = {racing_eta}: every candidate trains a share of the "
                "budget, the best 1/η go on). "
                if racing_eta
                else "every candidate trains to the end. "
            )
            + f"Each of `{baseline}`'s networks is tuned for its own task. {SELECTION}",
            f"- {plateau_text(curves, baseline)}",
            "",
            "## Results",
            "",
            "Per task: mean test accuracy over the method's seeds (column `seeds`) with its 95% t-interval. "
            f"Δm (Maninis et al. 2019): mean relative change of every task's accuracy and macro-F1 against "
            f"`{baseline}`, in %, **positive = worse**. Δp (LibMTL): per task the mean relative change "
            "of its metrics, then the mean over tasks, in %, **positive = better** (with the same metrics for every "
            "task, Δp = −Δm). Both are computed per seed (paired) and given with their 95% interval. Cost: parameters, "
            "training seconds and inference seconds on the test split, of one multi-task network vs all "
            "single-task networks; `step_cost`: seconds per epoch (the same data and batch size for every method) "
            "over those of the hard-sharing method with fixed weights.",
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


def race_report(advice: Mapping, race: pd.DataFrame) -> str:
    """The advice's opening: the raced strategy, why, and the race's table and cost."""
    params = advice["race"]
    table = race.assign(
        validation_accuracy=race["validation_accuracy"].round(3),
        race_score=race["race_score"].round(3),
        images_seen=race["images_seen"].round().astype(int),
        train_seconds=race["train_seconds"].round(1),
    )
    prior = advice["prior_strategy"]
    budget = "all" if params["budget_share"] == 1 else f"{params['budget_share']:g}"
    agreed = "the race agreed with the prior" if prior == advice["strategy"] else f"the prior's choice was `{prior}`"
    where_text = (
        f"from source `{advice['candidate']}`, the first {advice['freeze_blocks']} of {advice['total_blocks']} "
        "blocks frozen"
        if advice.get("transfers", True)
        else "(a baseline: transfer will not pay here, by the race on validation)"
    )
    return "\n".join(
        [
            f"# Advice: `{advice['strategy']}` " + where_text,
            "",
            f"Chosen by a race on the validation labels alone ({agreed}), each strategy from its own source "
            "and at its own depth (its `source` and `freeze_blocks`): each network strategy "
            + (
                "at each setting of its tuning grid (a candidate each; its row shows its best)"
                if params["settings"] == "grid"
                else "at the middle of its tuning grid"
            )
            + f" for {budget} of its epochs, the fit networks cut by successive halving (η = "
            f"{params['eta']}, no rung before a network's min_epochs nor before {params['first_rung_share']:.0%} of "
            "its epochs), the strategies without epochs tuned over their whole grid, seeds "
            f"{params['seeds']}. The best race score wins, ties to the earlier row (the prior's choice first): "
            f"a network's is its validation accuracy over its last {params['settled_epochs']} epochs, the "
            "level it settled at (its best epoch, `validation_accuracy`, was picked on these same images); a "
            "classical reference's is cross-validated over its training + validation labels; a classifier on "
            "frozen features', its tuned validation accuracy. A cut row shows its score at the rung that cut it.",
            "",
            f"Cost of the advice: {advice['race_images_seen']:,.0f} images through a network in the race, "
            f"{advice['advice_seconds']:.1f} s with the transferability scores. Estimated before the race "
            f"(steps timed here): at most {advice['race_estimated_seconds']:.0f} s for the race, about "
            f"{advice['grid_estimated_seconds']:.0f} s for the comparison's whole grid (its seeds), so at most "
            f"{advice['race_estimated_share']:.1%} of it; the race took {advice['race_seconds']:.0f} s, "
            f"{advice['race_share_of_grid_estimate']:.1%} of that estimate.",
            "",
            table.to_markdown(index=False),
        ]
    )


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
    source = advised_source(advice)
    source_text = ", ".join(f"{what} {int(ranks.loc[source, what])} of {len(ranks)}" for what in ranks.columns)
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
            f"- Advised source `{source}`: its measured rank among the candidates (1 = best): {source_text}.",
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


def labels_phrase(train_per_class: float, validation_per_class: float, refitted: Sequence[str] = ()) -> str:
    """The labels a verdict was reached with, validation included (it is part of the budget), and
    the classical references that are fitted on all of them (`cross_validate_classical`)."""
    total = train_per_class + validation_per_class
    fitted_on_all = f"; {', '.join(f'`{name}`' for name in refitted)} fitted on all {total:g}" if refitted else ""
    return (
        f"{train_per_class:g} label{'' if train_per_class == 1 else 's'} per class to train + "
        f"{validation_per_class:g} to validate ({total:g} per class in the budget{fitted_on_all})"
    )


def classical_tuning_text(folds: Mapping[str, int]) -> str:
    """How the classical references (their cross-validation folds by name) choose and fit."""
    if not folds:
        return ""
    names = ", ".join(f"`{name}` ({count}-fold)" for name, count in folds.items())
    return (
        f"Classical references {names}: scikit-learn on the raw pixels as they are, in [0, 1], not standardised; "
        "each candidate of the grid is scored by stratified cross-validation over the training + validation labels "
        "(leave-one-out when a class has fewer labels than folds), the best mean out-of-fold accuracy over seeds is "
        "kept (ties: lower NLL) and the model is refitted on all those labels; their validation_accuracy is that "
        "cross-validated accuracy. Every other strategy trains on the training labels and chooses on the validation "
        "labels."
    )


def interval_groups(table: pd.DataFrame, gain: str, interval: str) -> dict[str, pd.DataFrame]:
    """Rows by where the interval of their `gain` (columns `interval`_ci_low and _ci_high) lies:
    above zero, below zero, across it (zero included), or nowhere (one seed: no interval)."""
    low, high = table[f"{interval}_ci_low"], table[f"{interval}_ci_high"]
    return {
        "better": table[low > 0].sort_values(gain, ascending=False),
        "worse": table[high < 0].sort_values(gain),
        "indistinguishable": table[(low <= 0) & (high >= 0)],
        "no interval": table[low.isna() | high.isna()],
    }


def listing(rows: pd.DataFrame, name: str, gain: str, interval: str, unit: str) -> str:
    """'`a` (+5.2 points [+1.1, +9.3]), `b` (…)': each row's gain and its interval."""
    parts = []
    for _, row in rows.iterrows():
        low, high = row[f"{interval}_ci_low"], row[f"{interval}_ci_high"]
        bounds = "" if math.isnan(low) else f" [{low:+.1f}, {high:+.1f}]"
        parts.append(f"`{row[name]}` ({row[gain]:+.1f} {unit}{bounds})")
    return ", ".join(parts)


def seeds_text(table: pd.DataFrame) -> str:
    counts = sorted(set(table["seeds"]))
    return f"n = {counts[0]} seeds" if len(counts) == 1 else f"n = {', '.join(map(str, counts))} seeds by row"


def verdict(comparison: pd.DataFrame, labels: str, confidence: float, baseline: str = "scratch") -> str:
    """The transfer comparison (`compare_to_baseline`'s table) in plain words: which strategies beat the
    best baseline with the interval of their paired gain clear of zero, and by how much; which fall
    below it with the interval clear of zero (negative transfer); which cannot be told from it."""
    best = comparison[comparison["role"] == "best baseline"].iloc[0]
    strategies = comparison[comparison["role"] == "transfer"]
    sentences = [
        f"With {labels}, the best baseline (chosen on validation) is `{best['strategy']}`, test accuracy "
        f"{best['accuracy']:.3f}; gains are in points of test accuracy against it, paired by seed, with their "
        f"{round(confidence * 100)}% interval ({seeds_text(comparison)})."
    ]
    if strategies.empty:
        return " ".join([*sentences, "No transfer strategy was compared."])
    groups = interval_groups(strategies, "gain_over_best_points", "gain_over_best")
    for group, found, none in (
        (
            "better",
            "Better than it, the interval clear of zero: {}.",
            "No strategy beats it with an interval clear of zero.",
        ),
        (
            "worse",
            "Worse than it, the interval clear below zero (negative transfer): {}.",
            "None is below it with an interval clear of zero.",
        ),
        ("indistinguishable", "Indistinguishable from it (the interval spans zero): {}.", ""),
        ("no interval", "Without an interval (one seed): {}.", ""),
    ):
        rows = groups[group]
        sentences.append(
            found.format(listing(rows, "strategy", "gain_over_best_points", "gain_over_best", "points"))
            if len(rows)
            else none
        )
    if best["strategy"] != baseline:
        below = strategies[strategies["negative_transfer"]]["strategy"]
        names = ", ".join(f"`{name}`" for name in below) or "none"
        sentences.append(
            f"Against `{baseline}` alone (the table's negative_transfer), the interval lies below zero for {names}."
        )
    return " ".join(sentence for sentence in sentences if sentence)


def learning_curve_verdict(
    curve: pd.DataFrame,
    baseline: str,
    reference_baselines: Sequence[str],
    confidence: float,
    refitted: Sequence[str] = (),
) -> list[str]:
    """One verdict per budget (`verdict`), from the curve's rows of (strategy, labels_per_class, k,
    labels_used, seed, accuracy, ...): the strategies against that budget's best baseline, paired by
    seed (a seed draws the same labels for every strategy)."""
    lines = []
    for budget, points in sorted(
        curve.groupby("labels_per_class", sort=False), key=lambda p: p[1]["labels_used"].mean()
    ):
        k = points["k"].mean()
        comparison = compare_to_baseline(points, baseline, confidence, reference_baselines)
        labels = labels_phrase(k, points["labels_used"].mean() - k, refitted)
        lines.append(f"- **k = {budget}**: {verdict(comparison, labels, confidence, baseline)}")
    return lines


def multitask_verdict(comparison: pd.DataFrame, looks: Mapping, baseline: str, labels: str) -> str:
    """The multi-task comparison in plain words, method by method as the planned looks decided it, by Δp
    against the single-task networks (positive = better; Δm has the opposite sign)."""
    sentences = [
        f"With {labels}, against `{baseline}` (one network per task): Δp in % (positive = better; Δm has the "
        "opposite sign), paired by seed, with its interval at the level of the look that decided it. " + looks["design"]
    ]
    sentences += verdict_sentences(comparison[comparison["method"] != baseline], "method", "delta_p", "%")
    cut = [line for look in looks["looks"] for line in look.get("cut", [])]
    if cut:
        sentences.append(f"Not run for lack of time: {'; '.join(cut)}.")
    sentences += more_seeds_hint(comparison, "`multitask.seeds`")
    return " ".join(sentences)


SEED_VARIANCE = (
    "A seed sets a network's initialisation, the order of its batches and its augmentation draws (and the "
    "cross-validation folds' shuffle of a classical reference); the labelled images are one draw "
    "(ingest.split.seed), the same for every seed and row, so the intervals cover the randomness of "
    "training, not which images were labelled."
)
VERDICT_ORDER = ("better", "worse", "equivalent", "open")


def with_decisions(
    comparison: pd.DataFrame,
    decisions: Mapping[str, Mapping],
    key: str = "strategy",
    gain: str = "gain_over_best_points",
    reference: str = "best baseline",
) -> pd.DataFrame:
    """The comparison with each row's verdict from the planned looks (headstart.ml.looks): the verdict,
    the seeds and look it was made at, and the gain's interval at that look's level; sorted by gain."""
    table = comparison.copy()
    decided = [decisions.get(name) for name in table[key]]
    table.insert(2, "verdict", [d["verdict"] if d else reference for d in decided])
    table.insert(3, "decided_at_look", [d["look"] if d else None for d in decided])
    table["verdict_level"] = [d["confidence"] if d else None for d in decided]
    table["verdict_ci_low"] = [d["low"] if d else None for d in decided]
    table["verdict_ci_high"] = [d["high"] if d else None for d in decided]
    table["open_because"] = [d["open_because"] if d else "" for d in decided]
    return table.sort_values(gain, ascending=False, kind="stable").reset_index(drop=True)


VERDICT_HEADINGS = {
    "better": "Better than it",
    "worse": "Worse than it (negative transfer against it)",
    "equivalent": "Equivalent to it within the declared margin",
    "open": "Open",
}


def verdict_sentences(table: pd.DataFrame, key: str, gain: str, unit: str) -> list[str]:
    """One sentence per verdict (headstart.ml.looks), listing its rows: gain, interval at the level of
    the look that decided it, n, the look, and why an open row stayed open."""
    sentences = []
    for kind in VERDICT_ORDER:
        rows = table[table["verdict"] == kind]
        if rows.empty:
            continue
        parts = []
        for _, row in rows.iterrows():
            low, high = row["verdict_ci_low"], row["verdict_ci_high"]
            bounds = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
            why = f"; {row['open_because']}" if kind == "open" and row["open_because"] else ""
            parts.append(
                f"`{row[key]}` ({row[gain]:+.1f}{unit}{bounds}, {100 * row['verdict_level']:.3g}%, "
                f"n = {row['seeds']}, look {int(row['decided_at_look'])}{why})"
            )
        sentences.append(f"{VERDICT_HEADINGS[kind]}: {', '.join(parts)}.")
    return sentences


def more_seeds_hint(table: pd.DataFrame, knob: str) -> list[str]:
    """What decides a row the seeds left open: more seeds in the looks (conf/decisive lists ten)."""
    ran_out = table[(table["verdict"] == "open") & table["open_because"].astype(str).str.startswith("seeds ran out")]
    if ran_out.empty:
        return []
    return [
        f"To decide the {len(ran_out)} open row(s), list more {knob} for the planned looks (`kedro run --env "
        "decisive`: up to 10 seeds, spent only on the rows still open)."
    ]


def looks_verdict(comparison: pd.DataFrame, looks: Mapping, labels: str, baseline: str) -> str:
    """The comparison in words, row by row as the planned looks decided it: better, worse, equivalent
    within the margin, or open (and why), each with its gain, interval at its look's level and n."""
    best = comparison[comparison["verdict"] == "best baseline"].iloc[0]
    sentences = [
        f"With {labels}, the best baseline (chosen on validation at the first look) is `{best['strategy']}`, "
        f"test accuracy {best['accuracy']:.3f} (n = {best['seeds']}); each row's gain over it is in points of "
        "test accuracy, paired by seed, with its interval at the level of the look that decided it."
    ]
    sentences += verdict_sentences(comparison, "strategy", "gain_over_best_points", "")
    if looks.get("not_applicable"):
        sentences.append(
            "Not applicable here, left out before any training: "
            + ", ".join(f"`{name}` ({why})" for name, why in looks["not_applicable"].items())
            + "."
        )
    cut = [line for look in looks["looks"] for line in look.get("cut", [])]
    if cut:
        sentences.append(f"Not run for lack of time: {'; '.join(cut)}.")
    sentences += more_seeds_hint(comparison, "`transfer.seeds`")
    sentences.append(
        f"The looks trained {looks['seeds_if_fixed'] - looks['seeds_saved']} row-seeds of the "
        f"{looks['seeds_if_fixed']} a fixed design of {looks['seeds_listed']} seeds would (saved "
        f"{looks['seeds_saved']})."
    )
    return " ".join(sentences)


def transfer_report(comparison: pd.DataFrame, verdict_text: str, protocol: Sequence[str]) -> str:
    """The transfer comparison in Markdown: its verdict in words, its protocol, then the table."""
    return "\n".join(
        [
            "# Transfer strategies against the from-scratch and classical baselines",
            "",
            "## Verdict",
            "",
            verdict_text,
            "",
            *protocol,
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def learning_curve_report(
    verdicts: Sequence[str],
    budgets: Sequence,
    sizes: Mapping[str, int],
    seeds: Sequence[int],
    confidence: float,
    grids: Mapping[str, Sequence[Mapping[str, float]]],
    classical: Mapping[str, int],
    baselines: Sequence[str],
    eta: int | None,
    curve: pd.DataFrame,
    saved: pd.DataFrame,
) -> str:
    """The learning curve in Markdown: its verdict per budget, protocol, the curve and labels saved."""
    return "\n".join(
        [
            "# Learning curve: transfer against the best baseline at every label budget",
            "",
            "## Verdict",
            "",
            *verdicts,
            "",
            "## Protocol",
            "",
            f"- Budgets: k = {', '.join(map(str, budgets))} training labels per class, drawn from the target train "
            f"pool ({sizes['train pool']} images), plus the validation labels drawn from the validation split "
            f"({sizes['validation']} images); labels_used = training + validation labels per class, the x-axis of "
            "the curve and the unit of labels saved.",
            f"- Test split: {sizes['test']} images, used for the reported test accuracy only.",
            f"- {interval(confidence, seeds)} Seed s draws the labels (nested over k), tunes and trains.",
            f"- {tuning_grid_text(grids)} Tuned per budget and seed, on that draw's labels.",
            f"- {racing_text(eta)}",
            *([f"- {classical_tuning_text(classical)}"] if classical else []),
            f"- {SELECTION}",
            f"- Baselines: {', '.join(f'`{b}`' for b in baselines)}. At each budget the best baseline is the one with "
            "the best mean validation accuracy; labels saved are read off that best-baseline curve: the fewest labels "
            "used at which it reaches the strategy's mean test accuracy (negative: it needs fewer); its interval is a "
            f"{round(confidence * 100)}% percentile bootstrap over the n = {len(seeds)} seeds (1,000 resamples, "
            "paired across strategies).",
            "",
            "## Mean test accuracy [interval] by labels per class (labels used per class in brackets)",
            "",
            curve.to_markdown(index=False),
            "",
            "## Labels saved against the best baseline",
            "",
            saved.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def sweep_point_text(values: Mapping) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def multitask_sweep_verdict(table: pd.DataFrame, dimensions: Sequence[str], baseline: str) -> str:
    """Where multi-task wins (Δm's interval clear below zero), where it loses (clear above) and how many
    method × point pairs are inside the noise, in plain words, computed from the sweep's table."""
    methods = table[table["method"] != baseline]

    def where(rows: pd.DataFrame) -> str:
        return "; ".join(
            f"{row['method']} at {sweep_point_text({d: row[d] for d in dimensions})} "
            f"(Δm {row['delta_m']:+.1f} % [{row['delta_m_ci_low']:+.1f}, {row['delta_m_ci_high']:+.1f}])"
            for _, row in rows.iterrows()
        )

    wins = methods[methods["delta_m_ci_high"] < 0]
    losses = methods[methods["delta_m_ci_low"] > 0]
    inside = len(methods) - len(wins) - len(losses)
    return " ".join(
        [
            f"Against `{baseline}` at the same point (Δm in %, positive = worse, paired by seed, "
            f"95% interval; {seeds_text(table)}):",
            f"multi-task wins, the interval clear below zero, at {where(wins)}."
            if len(wins)
            else "multi-task wins nowhere with an interval clear of zero.",
            f"It loses, the interval clear above zero, at {where(losses)}."
            if len(losses)
            else "It loses nowhere with an interval clear of zero.",
            f"{inside} of {len(methods)} method × point pairs are inside the noise (the interval spans zero, "
            "or one seed gives none).",
        ]
    )


def multitask_sweep_report(
    title: str, table: pd.DataFrame, dimensions: Sequence[str], baseline: str, protocol: Sequence[str]
) -> str:
    """A multi-task sweep in Markdown: its verdict in words, its protocol, then the table."""
    return "\n".join(
        [
            f"# {title}",
            "",
            "## Verdict",
            "",
            multitask_sweep_verdict(table, dimensions, baseline),
            "",
            "## Protocol",
            "",
            *(f"- {line}" for line in protocol),
            f"- {SELECTION}",
            "",
            "## Results",
            "",
            f"Per point and method: `mean_accuracy`, the test accuracy averaged over the tasks and seeds; Δm "
            f"(Maninis et al. 2019) against `{baseline}` at the same point, in %, **positive = worse**; Δp, "
            "positive = better; both paired by seed with their 95% t-interval; cost as in the multi-task comparison.",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def suite_report(tasks: pd.DataFrame, audit: pd.DataFrame, summary: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """The suite in Markdown, opening with its verdict in words: where transfer paid, and how the advice
    did against the fixed policies."""
    advice = summary.set_index("policy").loc[summary["policy"].iloc[0]]
    others = summary.iloc[1:]
    paid = tasks[tasks["beat_best_baseline"].fillna("") != ""]
    negative = tasks[tasks["negative_transfer"].fillna("") != ""]
    # each policy against the advice on the tasks where that policy was measured (LogME's pick: fewer)
    regrets = audit.pivot(index="task", columns="policy", values="normalised_regret")
    first = summary["policy"].iloc[0]
    others = others[others["tasks"] > 0]
    better_than_all = all(
        regrets[first][regrets[policy].notna()].mean() < regrets[policy].mean() for policy in others["policy"]
    )
    best_other = others.loc[others["mean_normalised_regret"].idxmin()] if len(others) else None
    verdict = [
        f"Over {len(tasks)} tasks (each its own comparison, n = {', '.join(sorted({str(s) for s in tasks['seeds']}))} "
        "seeds): transfer beat the best baseline with an interval clear of zero on "
        f"{len(paid)} ({', '.join(paid['task']) or 'none'}); some strategy was negative transfer on {len(negative)}.",
        f"The advice was inside the best's interval on {advice['hit_rate']:.0%} of the tasks, with a mean "
        f"normalised regret of {advice['mean_normalised_regret']:.3f} ({advice['mean_points_lost']:.2f} points "
        f"lost on average), at {advice['mean_cost_share']:.1%} of a full grid's images.",
    ]
    if best_other is not None:
        verdict.append(
            f"{'Better' if better_than_all else 'Not better'} than every fixed policy on regret (each on the tasks "
            "where it was measured): the best of them, "
            f"{best_other['policy']}, had {best_other['mean_normalised_regret']:.3f} and hit "
            f"{best_other['hit_rate']:.0%}."
        )
    columns = ["task", "about", "seeds", "best", "best_accuracy", "best_ci_low", "best_ci_high", "within_best"]
    return "\n".join(
        [
            "# The task suite: the measured best strategy per task, and the advice audited across tasks",
            "",
            " ".join(verdict),
            "",
            "## Per task",
            "",
            tasks[columns + ["best_baseline", "beat_best_baseline", "negative_transfer"]].to_markdown(
                index=False, floatfmt=".3f"
            ),
            "",
            "## The audit, per policy",
            "",
            "Hit: inside the measured best's paired interval (or the best itself); normalised regret: (best − "
            "chosen) / (best − worst) in mean test accuracy; cost share: the images the policy trained over the "
            "task's whole comparison grid (the advice: its race). Each task's advice uses that task's labels "
            "alone; a setting chosen by reading this audit is to be judged leave-one-task-out "
            "(scripts/suite_leave_one_out.py).",
            "",
            summary.to_markdown(index=False, floatfmt=".3f"),
            "",
            *(
                [
                    "## The race's scores against the test accuracy",
                    "",
                    "Per kind of race finisher, over the tasks: the race's score (the advice's evidence, on "
                    "validation) minus the test accuracy the comparison then measured for that strategy; for networks "
                    "also their best epoch's validation accuracy minus it. A kind read high sets it above the others.",
                    "",
                    calibration.to_markdown(index=False, floatfmt=".3f"),
                    "",
                ]
                if len(calibration)
                else []
            ),
            "## The audit, per task and policy",
            "",
            audit.to_markdown(index=False, floatfmt=".3f"),
        ]
    )


def calibration_text(bins: int, coverages: Sequence[float]) -> str:
    """The protocol's line on the calibration and selective-prediction columns."""
    return (
        "Calibration: each model's temperature T (Guo et al., ICML 2017) is fitted on the validation labels by "
        "LBFGS on the NLL of logits/T; the network's argmax, hence accuracy, is unchanged. `ece` / `ece_calibrated`: "
        f"the standard binned top-label expected calibration error over {bins} equal-width bins of the maximum "
        "probability, Σ_b (n_b/n)·|acc_b − conf_b|, on test, before / after; `nll` / `nll_calibrated` the same for "
        "the test NLL. A k-nearest-neighbours reference's logits are its smoothed log vote shares, so its T raises "
        "the vote shares to the power 1/T. The classical references are refitted on the training + validation "
        "labels: when they then answer every validation image right there is no evidence for a T, and T = 1 "
        "(their two ECEs equal). `aurc`: the area under the risk-coverage curve (Geifman & El-Yaniv, "
        "NeurIPS 2017) of the calibrated confidence, the mean error of the i most confident answers over i = 1..n "
        f"(ties in confidence spread evenly); lower is better. Accuracy at coverages {coverages[0]:.0%} to "
        f"{coverages[-1]:.0%} is in `transfer_selective_prediction.csv`. Each with its t-interval over seeds."
    )
