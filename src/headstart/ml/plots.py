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


def plot_confusion_matrix(matrix, class_names: list[str], title: str) -> Figure:
    """scikit-learn's confusion-matrix display on a figure of our own (true rows, predicted columns)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    figure, axis = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(ax=axis, colorbar=False, values_format="d")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_comparison(comparison, baseline: str = "scratch") -> Figure:
    """Mean test accuracy per strategy with its interval over seeds; the baseline's mean as a line."""
    figure, axis = plt.subplots(figsize=(1.2 * len(comparison) + 2, 4))
    means = comparison["accuracy"] * 100
    errors = [means - comparison["accuracy_ci_low"] * 100, comparison["accuracy_ci_high"] * 100 - means]
    colours = ["tab:gray" if s == baseline else ("tab:red" if neg else "tab:blue")
               for s, neg in zip(comparison["strategy"], comparison["negative_transfer"])]
    axis.bar(comparison["strategy"], means, yerr=[e.fillna(0) for e in errors], color=colours, capsize=4)
    baseline_rows = comparison[comparison["strategy"] == baseline]
    if len(baseline_rows):
        axis.axhline(float(baseline_rows["accuracy"].iloc[0]) * 100, color="tab:gray", linestyle="--", linewidth=1)
    axis.set_ylabel("test accuracy (%), 95% interval over seeds")
    axis.set_title("transfer strategies vs the from-scratch baseline (grey); red = negative transfer", fontsize=9)
    axis.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    return figure


def _line_with_band(axis, x, table, label: str) -> None:
    means = table["accuracy"] * 100
    axis.plot(x, means, marker="o", label=label)
    low = table["accuracy_ci_low"].fillna(table["accuracy"]).clip(0, 1) * 100  # a t-interval of 3 seeds can
    high = table["accuracy_ci_high"].fillna(table["accuracy"]).clip(0, 1) * 100  # leave [0, 100]: drawn clipped
    axis.fill_between(x, low, high, alpha=0.2)


def plot_learning_curve(curve, baseline: str = "scratch", confidence: float = 0.95) -> Figure:
    """Test accuracy against labels per class (log axis), one line per strategy with its interval band."""
    from headstart.ml.metrics import summarise_over_seeds

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for strategy, rows in curve.groupby("strategy", sort=False):
        table = summarise_over_seeds(rows, ["labels_per_class"], confidence)
        budgets = rows.groupby("labels_per_class", sort=False)["k"].mean().loc[table["labels_per_class"]].to_numpy()
        _line_with_band(axis, budgets, table, f"{strategy} (baseline)" if strategy == baseline else strategy)
    ticks = curve.groupby("labels_per_class", sort=False)["k"].mean()
    axis.set_xscale("log")
    axis.set_xticks(ticks.to_numpy(), [f"{label}\n({k:.0f})" if label == "all" else label for label, k in ticks.items()])
    axis.minorticks_off()
    axis.set_xlabel("labelled target images per class")
    axis.set_ylabel(f"test accuracy (%), {round(confidence * 100)}% interval over seeds")
    axis.set_title("Learning curve: transfer strategies vs the from-scratch baseline", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_layer_sweep(table) -> Figure:
    """Yosinski et al.'s figure: test accuracy against blocks transferred, one line per arm."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for arm, rows in table.groupby("arm", sort=False):
        _line_with_band(axis, rows["blocks"].to_numpy(), rows, arm)
    axis.set_xticks(sorted(table["blocks"].unique()))
    axis.set_xlabel("blocks transferred from the source (n)")
    axis.set_ylabel("test accuracy (%), 95% interval over seeds")
    axis.set_title("Layer-transfer sweep: where frozen transfer falls, features stop being general", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_multitask_comparison(results, baseline: str) -> Figure:
    """Each method's mean test accuracy on the first two tasks, with 95% intervals; single-task marked ★."""
    from headstart.ml.metrics import t_interval

    tasks = list(dict.fromkeys(results["task"]))[:2]
    figure, axis = plt.subplots(figsize=(6, 5))
    for method, group in results.groupby("method", sort=False):
        points = [t_interval(group[group["task"] == task]["accuracy"] * 100) for task in tasks]
        (x, x_low, x_high), (y, y_low, y_high) = points if len(points) == 2 else (points[0], points[0])
        error = lambda m, lo, hi: [[m - lo if lo == lo else 0], [hi - m if hi == hi else 0]]  # NaN-safe
        axis.errorbar(x, y, xerr=error(x, x_low, x_high), yerr=error(y, y_low, y_high), capsize=3,
                      marker="*" if method == baseline else "o", markersize=14 if method == baseline else 7, label=method)
    axis.set_xlabel(f"{tasks[0]} test accuracy (%)")
    axis.set_ylabel(f"{tasks[-1]} test accuracy (%)")
    axis.set_title(f"Multi-task methods; ★ = {baseline} (one network per task)", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
