"""The protocol every report states in a few lines: splits and sizes, labels used, seeds, tuning,
selection, interval and n, sign conventions. A table without them cannot be checked by a sceptic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from headstart.ml.data.images import LabelledImages

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
        "Tuning (each strategy alike, on validation only; lr_scale multiplies the learning rates, or C for a "
        "linear classifier): " + "; ".join(parts) + "."
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
) -> list[str]:
    return [
        "## Protocol",
        "",
        f"- {split_sizes(splits)}",
        f"- {labels_used(splits['train'], splits['validation'])}",
        f"- {interval(confidence, seeds)}",
        f"- {tuning_grid_text(grids)}",
        f"- {racing_text(eta, rungs)}",
        f"- {SELECTION}",
        f"- Baselines: `{baseline}` (the same architecture from random initialisation, trained by the same code) and "
        f"{', '.join(f'`{b}`' for b in reference_baselines)} (scikit-learn-style classifiers on the raw pixels), on "
        f"the same labels and seeds. Best baseline, by mean validation accuracy: `{best}`.",
        f"- Signs: gain_points = test accuracy minus `{baseline}`'s, in percentage points, paired by seed; "
        "gain_over_best_points the same against the best baseline; positive = better than the baseline. "
        f"negative_transfer: the whole gain interval lies below zero (against `{baseline}`); below_best_baseline: "
        "the same against the best baseline.",
    ]
