"""The advise pipeline's reports: the advice before training (the scores, the ranking of candidate
sources, the size × similarity rule), and the race on validation that chose the strategy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd


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
    table = race.drop(columns=["seed_scores"], errors="ignore").assign(
        validation_accuracy=race["validation_accuracy"].round(3),
        race_score=race["race_score"].round(3),
        images_seen=race["images_seen"].round().astype(int),
        train_seconds=race["train_seconds"].round(1),
        **{gap: race[gap].round(1) for gap in ("gap_to_leader_points", "gap_ci_low", "gap_ci_high") if gap in race},
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
            *inseparable_lines(advice),
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


def inseparable_lines(advice: Mapping) -> list[str]:
    """The advice's uncertainty in words: the strategies the race could not separate from its pick, cheapest
    first (none before the advice named them)."""
    if "inseparable" not in advice:
        return []
    seeds = len(advice["race"]["seeds"])
    names = ", ".join(f"`{name}`" for name in advice["inseparable"])
    interval = (
        f"the paired t-interval of the per-seed race scores at {advice['inseparable_confidence']:.0%}, n = {seeds} "
        "seeds, as the planned looks compute it"
        if seeds > 1
        else "with one seed there is no interval, so nothing is separated"
    )
    if advice["inseparable"] == [advice["strategy"]]:
        return [f"The race separated `{advice['strategy']}` from every other finisher ({interval}).", ""]
    return [
        f"**Not separated on validation**: {names}, cheapest first by the race's priced cost ({interval}: the "
        f"gap of each to `{advice['strategy']}` reaches zero): the race cannot tell which of them is best; "
        "the first costs least.",
        "",
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
