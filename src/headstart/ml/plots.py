"""Figures for reports and MLflow (matplotlib with the Agg backend; no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from headstart.ml.data.images import LabelledImages


def plot_sample_grid(named_sets: dict[str, LabelledImages], samples_per_set: int, columns: int = 10) -> Figure:
    """The first images of each set, a block of rows per set, titled with the primary-task class."""
    rows_per_set = -(-samples_per_set // columns)
    figure, axes = plt.subplots(
        rows_per_set * len(named_sets),
        columns,
        figsize=(columns * 0.9, rows_per_set * len(named_sets) * 1.05),
        squeeze=False,
    )
    for block, (name, data) in enumerate(named_sets.items()):
        for slot in range(rows_per_set * columns):
            axis = axes[block * rows_per_set + slot // columns, slot % columns]
            axis.axis("off")
            if slot < min(samples_per_set, len(data)):
                image = data.images[slot].permute(1, 2, 0).numpy()
                axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
                axis.set_title(data.primary_classes[int(data.primary_labels[slot])], fontsize=7)
        axes[block * rows_per_set, 0].text(
            -0.3, 0.5, name, transform=axes[block * rows_per_set, 0].transAxes, ha="right", va="center", fontsize=8
        )
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


def _clipped_error(means, lows, highs, low_limit: float, high_limit: float):
    """Error-bar lengths of intervals clipped to [low_limit, high_limit], and whether any was clipped."""
    lows, highs = lows.fillna(means), highs.fillna(means)
    clipped = bool((lows < low_limit).any() or (highs > high_limit).any())
    return [means - lows.clip(low_limit, high_limit), highs.clip(low_limit, high_limit) - means], clipped


def _interval_rows(axis, means, errors, colours, labels) -> None:
    """One row per entry: its point and interval in its colour, labelled on the y-axis, and a zero line."""
    for position, (mean, low, high, colour) in enumerate(zip(means, errors[0], errors[1], colours)):
        axis.errorbar([mean], [position], xerr=[[low], [high]], fmt="o", color=colour, capsize=4)
    axis.set_yticks(list(range(len(labels))), labels, fontsize=8)
    axis.axvline(0, color="black", linewidth=1)
    axis.grid(axis="x", alpha=0.3)


VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "equivalent": "tab:blue", "open": "tab:orange"}
VERDICT_KEY = "green better, red worse, blue equivalent, orange open"


def plot_gains(comparison, best: str, level: int, seeds: int) -> Figure:
    """Each row's gain over the best baseline, in points, around a zero line, sorted by gain. With the
    planned looks' verdicts (a `verdict` column), each row is coloured by it and drawn with the interval
    of the look that decided it; else transfer below the best baseline is red, baselines grey."""
    rows = comparison.sort_values("gain_over_best_points", kind="stable")
    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.8))
    means = rows["gain_over_best_points"]
    decided = "verdict" in rows
    low, high = (
        ("verdict_ci_low", "verdict_ci_high") if decided else ("gain_over_best_ci_low", "gain_over_best_ci_high")
    )
    errors, clipped = _clipped_error(means, rows[low].astype(float), rows[high].astype(float), -100, 100)
    if decided:
        colours = [VERDICT_COLOURS.get(verdict, "tab:gray") for verdict in rows["verdict"]]
        labels = [
            f"{name} ({verdict}, n = {n})" for name, verdict, n in zip(rows["strategy"], rows["verdict"], rows["seeds"])
        ]
        title = (
            "Gain over the best baseline (chosen on validation)\ngreen better, red worse, blue equivalent, orange open"
        )
        interval = "each row's interval at the level of the look that decided it"
    else:
        colours = [
            "tab:gray" if role != "transfer" else ("tab:red" if below else "tab:blue")
            for role, below in zip(rows["role"], rows["below_best_baseline"])
        ]
        labels = [
            f"{name} ({role})" if role != "transfer" else name for name, role in zip(rows["strategy"], rows["role"])
        ]
        title = "Gain over the best baseline (chosen on validation); red: below it"
        interval = f"{level}% interval over n = {seeds} seeds"
    _interval_rows(axis, means, errors, colours, labels)
    axis.set_xlabel(f"test accuracy gain over `{best}` (percentage points)\n{interval}", fontsize=9)
    note = "\nintervals clipped to ±100 points" if clipped else ""
    axis.set_title(f"{title}{note}", fontsize=9)
    figure.tight_layout()
    return figure


def _line_with_band(axis, x, table, label: str, **style) -> bool:
    """A mean line with its interval band, clipped to [0, 100] %; returns whether any band was clipped."""
    means = table["accuracy"] * 100
    axis.plot(x, means, marker="o", label=label, **style)
    low = table["accuracy_ci_low"].fillna(table["accuracy"]) * 100
    high = table["accuracy_ci_high"].fillna(table["accuracy"]) * 100
    axis.fill_between(x, low.clip(0, 100), high.clip(0, 100), alpha=0.15, color=axis.lines[-1].get_color())
    return bool((low < 0).any() or (high > 100).any())


def clipped_note(clipped: bool) -> str:
    return " (bands clipped to [0, 100] %)" if clipped else ""


def plot_learning_curve(curve, baselines: list[str], confidence: float = 0.95) -> Figure:
    """Test accuracy against the labels used per class (training + validation; log axis), one line
    per strategy with its interval band; baselines dashed."""
    from headstart.ml.metrics import summarise_over_seeds

    figure, axis = plt.subplots(figsize=(7.5, 4.8))
    clipped = False
    for strategy, rows in curve.groupby("strategy", sort=False):
        table = summarise_over_seeds(rows, ["labels_per_class"], confidence)
        used = (
            rows.groupby("labels_per_class", sort=False)["labels_used"].mean().loc[table["labels_per_class"]].to_numpy()
        )
        style = {"linestyle": "--"} if strategy in baselines else {}
        clipped |= _line_with_band(
            axis, used, table, f"{strategy} (baseline)" if strategy in baselines else strategy, **style
        )
    ticks = curve.groupby("labels_per_class", sort=False)["labels_used"].mean()
    axis.set_xscale("log")
    axis.set_xticks(ticks.to_numpy(), [f"{used:.0f}\n(k={label})" for label, used in ticks.items()])
    axis.minorticks_off()
    axis.set_xlabel("labels used per class: training k + as many for validation")
    axis.set_ylabel(f"test accuracy (%), {round(confidence * 100)}% interval over n = {curve['seed'].nunique()} seeds")
    axis.set_title("Learning curve: transfer vs the baselines (dashed)" + clipped_note(clipped), fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_layer_sweep(table) -> Figure:
    """Yosinski et al.'s figure: test accuracy against blocks transferred, one line per arm."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    clipped = False
    for arm, rows in table.groupby("arm", sort=False):
        clipped |= _line_with_band(axis, rows["blocks"].to_numpy(), rows, arm)
    axis.set_xticks(sorted(table["blocks"].unique()))
    axis.set_xlabel("blocks transferred from the source (n)")
    axis.set_ylabel("test accuracy (%), 95% interval over seeds")
    axis.set_title(
        "Layer-transfer sweep: where frozen transfer falls, features stop being general" + clipped_note(clipped),
        fontsize=9,
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_delta_m(comparison, baseline: str, seeds: int) -> Figure:
    """Δm of each method against `baseline` (positive = worse), with its 95% interval over seeds,
    around a zero line; Δm cannot exceed 100 % (every metric at zero), so intervals are clipped there."""
    rows = comparison.iloc[::-1]
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.8))
    means = rows["delta_m"]
    errors, clipped = _clipped_error(means, rows["delta_m_ci_low"], rows["delta_m_ci_high"], -float("inf"), 100)
    colours = [
        "tab:gray" if m == baseline else ("tab:red" if low > 0 else ("tab:green" if high < 0 else "tab:blue"))
        for m, low, high in zip(rows["method"], rows["delta_m_ci_low"], rows["delta_m_ci_high"])
    ]
    _interval_rows(axis, means, errors, colours, [f"{m} (baseline)" if m == baseline else m for m in rows["method"]])
    axis.set_xlabel(f"Δm against {baseline} (%), positive = worse; 95% interval over n = {seeds} seeds")
    axis.set_title(
        "Multi-task methods: Δm (Maninis et al. 2019); red: worse, green: better, interval clear of 0"
        + ("; clipped at 100 %" if clipped else ""),
        fontsize=9,
    )
    figure.tight_layout()
    return figure


def plot_validation_curves(curves, baseline: str, seeds: int) -> Figure:
    """Each method's mean validation accuracy per epoch (over n seeds): has the budget let it plateau?"""
    figure, axis = plt.subplots(figsize=(7, 4))
    for method, curve in curves.groupby("method", sort=False):
        style = {"color": "black", "linewidth": 2.5} if method == baseline else {"linewidth": 1.2}
        axis.plot(curve["epoch"], curve["validation_accuracy"], label=method, **style)
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"validation accuracy (mean over tasks and n = {seeds} seeds)")
    axis.set_title(f"Multi-task methods on validation, each at its tuned setting; {baseline} in black", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_advice_audit(points, scores: list[str], title: str) -> Figure:
    """Each score (columns) against the measured mean test accuracy, one row per comparison (across
    candidate sources, across blocks), one marker per measured strategy; points labelled by what they rank."""
    comparisons = list(dict.fromkeys(points["across"]))
    figure, axes = plt.subplots(
        len(comparisons), len(scores), figsize=(3.0 * len(scores), 2.8 * len(comparisons)), squeeze=False
    )
    for row, across in enumerate(comparisons):
        for column, score in enumerate(scores):
            axis = axes[row, column]
            shown = points[(points["across"] == across)].dropna(subset=[score])
            if shown.empty:
                axis.text(0.5, 0.5, f"{score}: no value\n(needs the source head)", ha="center", va="center", fontsize=8)
                axis.set_xticks([])
                axis.set_yticks([])
                continue
            for (measured, group), marker in zip(shown.groupby("measured", sort=False), "osD^"):
                axis.scatter(group[score], group["accuracy"], marker=marker, label=measured)
                for _, point in group.iterrows():
                    axis.annotate(str(point["item"]), (point[score], point["accuracy"]), fontsize=6)
            axis.set_xlabel(score, fontsize=8)
            axis.tick_params(labelsize=7)
            if column == 0:
                axis.set_ylabel(f"across {across}\nmean test accuracy", fontsize=8)
                axis.legend(fontsize=6)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_multitask_sweep(table, x: str, lines: list[str], baseline: str, seeds: int, title: str) -> Figure:
    """Δm against `baseline` (positive = worse) along `x`, one line per method and value of `lines`,
    each point with its 95% interval over n seeds; zero is the single-task networks."""
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    methods = table[table["method"] != baseline]
    for key, group in methods.groupby(["method", *lines], sort=False):
        group = group.sort_values(x)
        label = ", ".join(str(value) for value in key)
        errors = [group["delta_m"] - group["delta_m_ci_low"], group["delta_m_ci_high"] - group["delta_m"]]
        axis.errorbar(
            group[x], group["delta_m"], yerr=[e.fillna(0) for e in errors], marker="o", capsize=3, label=label
        )
    axis.axhline(0, color="black", linewidth=1)
    axis.set_xscale("log", base=2)
    axis.set_xlabel(x.replace("_", " "))
    axis.set_ylabel(f"Δm against {baseline} (%), positive = worse")
    axis.set_title(f"{title}; 95% interval over n = {seeds} seeds", fontsize=9)
    axis.legend(fontsize=7, title=", ".join(["method", *lines]), title_fontsize=7)
    figure.tight_layout()
    return figure


def plot_suite_audit(summary, tasks: int) -> Figure:
    """Per policy: its hit rate and mean normalised regret over the suite's tasks, side by side."""
    figure, (hits, regrets) = plt.subplots(1, 2, figsize=(10, 0.5 * len(summary) + 1.8), sharey=True)
    rows = summary.iloc[::-1]
    colours = ["tab:blue" if policy.startswith("advice") else "tab:gray" for policy in rows["policy"]]
    hits.barh(rows["policy"], rows["hit_rate"] * 100, color=colours)
    hits.set_xlabel("hit rate: inside the best's interval (%)")
    hits.set_xlim(0, 100)
    regrets.barh(rows["policy"], rows["mean_normalised_regret"], color=colours)
    regrets.set_xlabel("mean normalised regret (0 = the best, 1 = the worst)")
    regrets.set_xlim(0, max(1.0, float(rows["mean_normalised_regret"].max())))
    figure.suptitle(f"The advice and fixed policies across the suite's {tasks} tasks", fontsize=10)
    figure.tight_layout()
    return figure


def plot_reliability(pooled: dict[str, dict[str, dict[str, list]]], bins: int) -> Figure:
    """A reliability diagram per strategy (its seeds' test images pooled): the accuracy in each of `bins`
    equal-width confidence bins before (grey outline) and after temperature scaling (bars), against the
    diagonal a calibrated model follows; the title gives both ECEs (headstart.ml.calibration)."""
    from headstart.ml.calibration import ece_of_bins

    columns = min(4, max(1, len(pooled)))
    rows = -(-len(pooled) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.1 * columns, 3.0 * rows), squeeze=False)
    width = 1.0 / bins
    centres = [width * (index + 0.5) for index in range(bins)]
    for axis, (strategy, binned) in zip(axes.flat, pooled.items()):
        for kind, style in (
            ("calibrated", {"color": "tab:blue", "alpha": 0.7}),
            ("raw", {"fill": False, "edgecolor": "grey"}),
        ):
            counts, correct = binned[kind]["count"], binned[kind]["correct"]
            accuracy = [r / n if n else 0.0 for r, n in zip(correct, counts)]
            axis.bar(centres, accuracy, width=width, label="after T" if kind == "calibrated" else "before", **style)
        axis.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--")
        axis.set(xlim=(0, 1), ylim=(0, 1))
        axis.set_title(
            f"{strategy}\nECE {ece_of_bins(binned['raw']):.3f} → {ece_of_bins(binned['calibrated']):.3f}", fontsize=8
        )
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(pooled) :]:
        axis.axis("off")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.supxlabel("confidence (maximum probability)", fontsize=9)
    figure.supylabel("accuracy", fontsize=9)
    figure.tight_layout()
    return figure


def plot_risk_coverage(table, seeds: int) -> Figure:
    """Accuracy against coverage per strategy (answering its most confident test images first), the mean
    over seeds (`metrics.selective_prediction_table`); the legend orders strategies by accuracy at half
    coverage."""
    figure, axis = plt.subplots(figsize=(7.5, 5))
    half = table[table["coverage"].sub(0.5).abs() < 1e-9].set_index("strategy")["accuracy"]
    order = sorted(table["strategy"].unique(), key=lambda name: -half.get(name, 0.0))
    for index, strategy in enumerate(order):
        rows = table[table["strategy"] == strategy]
        style = "-" if index < 10 else "--"  # the colour cycle has ten colours
        axis.plot(rows["coverage"], rows["accuracy"], style, marker="o", markersize=3, label=strategy)
    axis.set_xlabel("coverage (share of test images answered, most confident first)")
    axis.set_ylabel("accuracy of the answered images")
    axis.set_title(f"Selective prediction, mean over up to {seeds} seeds", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure
