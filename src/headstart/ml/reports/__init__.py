"""The protocol every report states in a few lines: splits and sizes, labels used, seeds, tuning,
selection, interval and n, sign conventions. A table without them cannot be checked by a sceptic.
And the verdict every report opens with, in words, computed from its comparison table.

One module per pipeline's report (transfer, learning_curve, layer_sweep, multitask, advise, advice_audit,
suite), what several share in common; every name is also importable from here."""

from headstart.ml.reports.advice_audit import (
    advice_audit_report,
    advice_verdict_line,
)
from headstart.ml.reports.advise import (
    advice_report,
    advice_summary_lines,
    race_report,
)
from headstart.ml.reports.common import (
    SEED_VARIANCE,
    SELECTION,
    VERDICT_HEADINGS,
    VERDICT_ORDER,
    classical_tuning_text,
    interval,
    labels_phrase,
    labels_used,
    more_seeds_hint,
    racing_text,
    seeds_text,
    split_sizes,
    tuning_grid_text,
    verdict_sentences,
    with_decisions,
)
from headstart.ml.reports.layer_sweep import (
    layer_sweep_report,
)
from headstart.ml.reports.learning_curve import (
    learning_curve_report,
    learning_curve_verdict,
)
from headstart.ml.reports.multitask import (
    multitask_report,
    multitask_sweep_report,
    multitask_sweep_verdict,
    multitask_verdict,
    plateau_text,
    sweep_point_text,
)
from headstart.ml.reports.suite import (
    suite_report,
)
from headstart.ml.reports.transfer import (
    calibration_text,
    interval_groups,
    listing,
    looks_verdict,
    transfer_protocol,
    transfer_report,
    verdict,
)

__all__ = [
    "SEED_VARIANCE",
    "SELECTION",
    "VERDICT_HEADINGS",
    "VERDICT_ORDER",
    "classical_tuning_text",
    "interval",
    "labels_phrase",
    "labels_used",
    "more_seeds_hint",
    "racing_text",
    "seeds_text",
    "split_sizes",
    "tuning_grid_text",
    "verdict_sentences",
    "with_decisions",
    "calibration_text",
    "interval_groups",
    "listing",
    "looks_verdict",
    "transfer_protocol",
    "transfer_report",
    "verdict",
    "learning_curve_report",
    "learning_curve_verdict",
    "layer_sweep_report",
    "multitask_report",
    "multitask_sweep_report",
    "multitask_sweep_verdict",
    "multitask_verdict",
    "plateau_text",
    "sweep_point_text",
    "advice_report",
    "advice_summary_lines",
    "race_report",
    "advice_audit_report",
    "advice_verdict_line",
    "suite_report",
]
