"""Figures for reports and MLflow (matplotlib with the Agg backend; no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from headstart.ml.data.images import LabelledImages  # noqa: E402


def plot_sample_grid(named_sets: dict[str, LabelledImages], samples_per_set: int, columns: int = 10) -> Figure:
    """The first images of each set, a block of rows per set, titled with the primary-task class."""
    rows_per_set = -(-samples_per_set // columns)
    figure, axes = plt.subplots(
        rows_per_set * len(named_sets), columns, figsize=(columns * 0.9, rows_per_set * len(named_sets) * 1.05), squeeze=False
    )
    for block, (name, data) in enumerate(named_sets.items()):
        for slot in range(rows_per_set * columns):
            axis = axes[block * rows_per_set + slot // columns, slot % columns]
            axis.axis("off")
            if slot < min(samples_per_set, len(data)):
                image = data.images[slot].permute(1, 2, 0).numpy()
                axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
                axis.set_title(data.primary_classes[int(data.primary_labels[slot])], fontsize=7)
        axes[block * rows_per_set, 0].text(-0.3, 0.5, name, transform=axes[block * rows_per_set, 0].transAxes,
                                           ha="right", va="center", fontsize=8)
    figure.tight_layout()
    return figure
