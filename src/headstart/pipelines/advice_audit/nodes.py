"""Thin nodes over headstart.ml.advice: measure each candidate source by training, then read the
scores' rank correlations and the advice's verdict against what was measured."""

from __future__ import annotations

import logging
import time

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.advice import HEAD_SCORES, SCORES, rank_correlations, within_best
from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_advice_audit
from headstart.ml.strategies import TargetTask, train_tuned
from headstart.ml.studies import test_metrics
from headstart.params import AdviceAuditParams, RuntimeParams, TransferParams

logger = logging.getLogger(__name__)


def measure_candidates(
    source_candidates: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    transfer: TransferParams,
    advice_audit: AdviceAuditParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Each candidate fine-tuned and linear-probed by two strategies of the comparison (their own
    parameters, the audit's tuning grid, transfer.seeds), on the default labels; test accuracy per seed."""
    train, validation = target_train.primary_pairs(), target_validation.primary_pairs()
    test = target_test.primary_pairs()
    num_classes = len(target_train.primary_classes)
    measured = {"finetune": advice_audit.finetune_strategy, "probe": advice_audit.probe_strategy}
    missing = [name for name in measured.values() if name not in transfer.strategies]
    if missing:
        raise ValueError(f"advice_audit: {', '.join(missing)} not in transfer.strategies")
    rows, runs = [], []
    for candidate, stored in source_candidates.items():
        task = TargetTask(stored.config, stored.state, num_classes, train, validation)
        for role, strategy in measured.items():
            params = transfer.strategies[strategy]
            logger.info("Audit: %s on candidate %s", strategy, candidate)
            started = time.perf_counter()
            tuned = train_tuned(
                task,
                params.tuning_grid(advice_audit.lr_scales),
                transfer.seeds,
                lambda setting, seed, params=params: params.to_config(seed, runtime, **setting),
            )
            seconds = time.perf_counter() - started
            for seed, result in tuned.results.items():
                metrics = test_metrics(result, test, runtime.device)
                point = {"candidate": candidate, "measured": role, "strategy": strategy, "seed": seed}
                rows.append({**point, **metrics, "tuned": tuned.setting_text(), "tuning_seconds": seconds})
                runs.append(
                    {
                        "run_name": f"advice_audit {candidate} {strategy} seed {seed}",
                        "params": {"study": "advice_audit", **point, "tuned": tuned.setting_text()},
                        "history": result.history,
                        "metrics": {f"test_{k}": v for k, v in metrics.items()},
                        "tags": {"study": "advice_audit", "candidate": candidate},
                    }
                )
    return pd.DataFrame(rows), runs


def _full_comparison_seconds(comparison: pd.DataFrame, transfer: TransferParams) -> float:
    """The transfer comparison's training time: per strategy its kept setting's mean seconds × seeds ×
    the size of its tuning grid (every candidate of the grid trains; their times are alike)."""
    return float(
        sum(
            row["train_seconds"]
            * row["seeds"]
            * len(transfer.strategies[row["strategy"]].tuning_grid(transfer.lr_scales))
            for _, row in comparison.iterrows()
            if row["strategy"] in transfer.strategies
        )
    )


def audit_advice(
    transferability_scores: pd.DataFrame,
    advice: dict,
    candidate_measurements: pd.DataFrame,
    transfer_comparison: pd.DataFrame,
    layer_sweep_summary: pd.DataFrame,
    advice_audit: AdviceAuditParams,
    transfer: TransferParams,
) -> tuple[pd.DataFrame, str, Figure]:
    """Kendall's τ (with n) of each score against the measured test accuracy, across candidate sources
    (fine-tuned, linear-probed) and across blocks (the layer sweep's arms, for `block_candidate`); the
    verdict on the advised strategy and depth; the time of the advice beside the comparison's."""
    scores = transferability_scores
    top = scores[scores["final_block"].astype(bool)]
    measured = (
        candidate_measurements.groupby(["candidate", "measured"], sort=False)["accuracy"]
        .mean()
        .reset_index()
        .merge(top, on="candidate")
        .rename(columns={"candidate": "item"})
    )
    per_block = scores[scores["candidate"] == advice_audit.block_candidate]
    sweep = layer_sweep_summary[layer_sweep_summary["arm"].isin(["copied_frozen", "copied_finetuned"])]
    by_block = (
        sweep.rename(columns={"blocks": "block", "arm": "measured"})[["block", "measured", "accuracy"]]
        .merge(per_block, on="block")
        .rename(columns={"block": "item"})
    )
    by_block[list(HEAD_SCORES)] = float("nan")  # the final block's head scores rank nothing across blocks
    points = pd.concat([measured.assign(across="candidates"), by_block.assign(across="blocks")], ignore_index=True)
    rows = []
    for across, group in points.groupby("across", sort=False):
        for what, subset in group.groupby("measured", sort=False):
            usable = [score for score in SCORES if subset[score].notna().any()]
            for row in rank_correlations(subset, usable, "accuracy"):
                rows.append({"across": across, "measured": what, **row})
    table = pd.DataFrame(rows)

    strategy_verdict = within_best(transfer_comparison, "strategy", advice["strategy"])
    frozen = layer_sweep_summary[layer_sweep_summary["arm"] == "copied_frozen"].reset_index(drop=True)
    depth_verdict = within_best(frozen, "blocks", advice["freeze_blocks"])
    ranks = measured.pivot(index="item", columns="measured", values="accuracy").rank(ascending=False, method="min")
    source_text = ", ".join(
        f"{what} {int(ranks.loc[advice['candidate'], what])} of {len(ranks)}" for what in ranks.columns
    )
    audit_seconds = float(candidate_measurements.groupby(["candidate", "measured"])["tuning_seconds"].first().sum())
    comparison_seconds = _full_comparison_seconds(transfer_comparison, transfer)

    def verdict_text(verdict: dict, what: str) -> str:
        if not verdict["measured"]:
            return f"- Advised {what} `{verdict['advised']}`: not measured (the best measured: `{verdict['best']}`)."
        return (
            f"- Advised {what} `{verdict['advised']}`: mean test accuracy {verdict['advised_accuracy']:.3f}; the "
            f"measured best is `{verdict['best']}` at {verdict['best_accuracy']:.3f} [{verdict['best_ci_low']:.3f}, "
            f"{verdict['best_ci_high']:.3f}]: {'the best' if verdict['is_best'] else 'not the best'}, "
            f"{'inside' if verdict['inside_best_interval'] else 'outside'} the best's interval."
        )

    for line in (verdict_text(strategy_verdict, "strategy"), verdict_text(depth_verdict, "freeze depth")):
        logger.info(line.lstrip("- "))
    logger.info("Rank correlations of the scores with measured accuracy:\n%s", table.to_string(index=False))
    markdown = "\n".join(
        [
            "# Audit of the advice: scores and recommendation against measured accuracy",
            "",
            "## Protocol",
            "",
            f"- Across candidate sources: each candidate fine-tuned (`{advice_audit.finetune_strategy}`) and "
            f"linear-probed (`{advice_audit.probe_strategy}`) with the comparison's parameters, tuning grid "
            f"{advice_audit.lr_scales}, seeds {transfer.seeds}, on the default target labels; the score at the "
            "final block against the mean test accuracy over seeds.",
            f"- Across blocks: the per-block scores of `{advice_audit.block_candidate}` against the layer sweep's "
            "mean test accuracy at n = block for its copied_frozen and copied_finetuned arms (the sweep trains on "
            "the catalogued source model, the same as that candidate when pretrain's parameters are unchanged). "
            "LEEP and NCE need the source head, so they have no per-block values.",
            "- Kendall's τ-b (scipy.stats.kendalltau) with its two-sided p-value; n is the number of points "
            "ranked. With n = 3 or 4, even a perfect ranking has p = 0.33 or 0.083 (without ties): read the "
            "signs, not the significance.",
            "",
            "## Rank correlation (Kendall τ) of each score with measured test accuracy",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
            "",
            "## The advice against what was measured",
            "",
            f"- Advice: source `{advice['candidate']}`, `{advice['strategy']}`, freeze {advice['freeze_blocks']} "
            f"of {advice['total_blocks']} blocks ({advice['quadrant']}).",
            f"- Advised source `{advice['candidate']}`: its measured rank among the candidates (1 = best): "
            f"{source_text}.",
            verdict_text(strategy_verdict, "strategy") + " (transfer comparison, default source model)",
            verdict_text(depth_verdict, "freeze depth") + " (layer sweep, copied_frozen arm)",
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
            measured[["item", "measured", "accuracy", *SCORES]].to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
    figure = plot_advice_audit(points, list(SCORES), "Scores before training vs test accuracy after")
    return table, markdown, figure
