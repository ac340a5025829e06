"""The advice audit's report: the transferability scores and the recommendation against the accuracy
that training then measured, and what the advice cost beside the comparison it anticipates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.advice_audit import advised_source


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
