"""Thin nodes over headstart.ml.advice_audit: measure each candidate source by training, then read the
scores' rank correlations and the advice's verdict against what was measured."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.advice import SCORES
from headstart.ml.advice_audit import (
    audit_correlations,
    audit_points,
    audit_seconds,
    audit_verdicts,
    full_comparison_seconds,
    measured_ranks,
)
from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_advice_audit
from headstart.ml.reports.advice_audit import advice_audit_report, advice_verdict_line
from headstart.ml.studies import measure_candidates as train_candidates
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
    roles = {"finetune": advice_audit.finetune_strategy, "probe": advice_audit.probe_strategy}
    missing = [name for name in roles.values() if name not in transfer.strategies]
    if missing:
        raise ValueError(f"advice_audit: {', '.join(missing)} not in transfer.strategies")
    measured = {
        role: (
            name,
            transfer.strategies[name].tuning_grid(advice_audit.lr_scales),
            lambda setting, seed, params=transfer.strategies[name]: params.to_config(seed, runtime, **setting),
        )
        for role, name in roles.items()
    }
    return train_candidates(
        source_candidates, target_train, target_validation, target_test, measured, transfer.seeds, runtime.device
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
    measured, points = audit_points(
        transferability_scores, candidate_measurements, layer_sweep_summary, advice_audit.block_candidate
    )
    table = audit_correlations(points)
    strategy_verdict, depth_verdict = audit_verdicts(advice, transfer_comparison, layer_sweep_summary)
    for verdict, what in ((strategy_verdict, "strategy"), (depth_verdict, "freeze depth")):
        logger.info(advice_verdict_line(verdict, what).lstrip("- "))
    logger.info("Rank correlations of the scores with measured accuracy:\n%s", table.to_string(index=False))
    grid_sizes = {name: len(params.tuning_grid(transfer.lr_scales)) for name, params in transfer.strategies.items()}
    markdown = advice_audit_report(
        table,
        measured,
        measured_ranks(measured),
        advice,
        strategy_verdict,
        depth_verdict,
        SCORES,
        comparison_seconds=full_comparison_seconds(transfer_comparison, grid_sizes),
        audit_seconds=audit_seconds(candidate_measurements),
        finetune_strategy=advice_audit.finetune_strategy,
        probe_strategy=advice_audit.probe_strategy,
        lr_scales=advice_audit.lr_scales,
        seeds=transfer.seeds,
        block_candidate=advice_audit.block_candidate,
    )
    figure = plot_advice_audit(points, list(SCORES), "Scores before training vs test accuracy after")
    return table, markdown, figure
