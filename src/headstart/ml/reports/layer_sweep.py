"""The layer sweep's report (Yosinski et al. 2014): its protocol, then the accuracy per number of copied
blocks and arm, the random control beside the copies."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from headstart.ml.reports.common import SELECTION, interval


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
