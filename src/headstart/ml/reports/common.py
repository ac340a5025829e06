"""What several reports share, written once so that each states it alike: the protocol's lines (splits,
labels used, intervals, tuning grids, racing, selection, classical references) and the verdict's phrases
from the planned looks (headstart.ml.looks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.data.images import LabelledImages

SELECTION = (
    "Selection: within a training, the kept epoch is the one with the best validation accuracy (ties: lower "
    "validation loss), early stopping waits `min_epochs`; across a tuning grid, the candidate with the best mean "
    "validation accuracy over seeds is kept. The test split is used for nothing but the reported test metrics."
)

SEED_VARIANCE = (
    "A seed sets a network's initialisation, the order of its batches and its augmentation draws (and the "
    "cross-validation folds' shuffle of a classical reference); the labelled images are one draw "
    "(ingest.split.seed), the same for every seed and row, so the intervals cover the randomness of "
    "training, not which images were labelled."
)

VERDICT_ORDER = ("better", "worse", "equivalent", "open")

VERDICT_HEADINGS = {
    "better": "Better than it",
    "worse": "Worse than it (negative transfer against it)",
    "equivalent": "Equivalent to it within the declared margin",
    "open": "Open",
}


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
        "Tuning (each strategy alike, over its whole grid and every seed, never on the test split; lr_scale "
        "multiplies the learning rates, or C for a linear classifier): " + "; ".join(parts) + "."
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


def classical_tuning_text(folds: Mapping[str, int]) -> str:
    """How the classical references (their cross-validation folds by name) choose and fit."""
    if not folds:
        return ""
    names = ", ".join(f"`{name}` ({count}-fold)" for name, count in folds.items())
    return (
        f"Classical references {names}: scikit-learn on the raw pixels as they are, in [0, 1], not standardised; "
        "each candidate of the grid is scored by stratified cross-validation over the training + validation labels "
        "(leave-one-out when a class has fewer labels than folds), the best mean out-of-fold accuracy over seeds is "
        "kept (ties: lower NLL) and the model is refitted on all those labels; their validation_accuracy is that "
        "cross-validated accuracy. Every other strategy trains on the training labels and chooses on the validation "
        "labels."
    )


def labels_phrase(train_per_class: float, validation_per_class: float, refitted: Sequence[str] = ()) -> str:
    """The labels a verdict was reached with, validation included (it is part of the budget), and
    the classical references that are fitted on all of them (`cross_validate_classical`)."""
    total = train_per_class + validation_per_class
    fitted_on_all = f"; {', '.join(f'`{name}`' for name in refitted)} fitted on all {total:g}" if refitted else ""
    return (
        f"{train_per_class:g} label{'' if train_per_class == 1 else 's'} per class to train + "
        f"{validation_per_class:g} to validate ({total:g} per class in the budget{fitted_on_all})"
    )


def seeds_text(table: pd.DataFrame) -> str:
    counts = sorted(set(table["seeds"]))
    return f"n = {counts[0]} seeds" if len(counts) == 1 else f"n = {', '.join(map(str, counts))} seeds by row"


def with_decisions(
    comparison: pd.DataFrame,
    decisions: Mapping[str, Mapping],
    key: str = "strategy",
    gain: str = "gain_over_best_points",
    reference: str = "best baseline",
) -> pd.DataFrame:
    """The comparison with each row's verdict from the planned looks (headstart.ml.looks): the verdict,
    the seeds and look it was made at, and the gain's interval at that look's level; sorted by gain."""
    table = comparison.copy()
    decided = [decisions.get(name) for name in table[key]]
    table.insert(2, "verdict", [d["verdict"] if d else reference for d in decided])
    table.insert(3, "decided_at_look", [d["look"] if d else None for d in decided])
    table["verdict_level"] = [d["confidence"] if d else None for d in decided]
    table["verdict_ci_low"] = [d["low"] if d else None for d in decided]
    table["verdict_ci_high"] = [d["high"] if d else None for d in decided]
    table["open_because"] = [d["open_because"] if d else "" for d in decided]
    return table.sort_values(gain, ascending=False, kind="stable").reset_index(drop=True)


def verdict_sentences(table: pd.DataFrame, key: str, gain: str, unit: str) -> list[str]:
    """One sentence per verdict (headstart.ml.looks), listing its rows: gain, interval at the level of
    the look that decided it, n, the look, and why an open row stayed open."""
    sentences = []
    for kind in VERDICT_ORDER:
        rows = table[table["verdict"] == kind]
        if rows.empty:
            continue
        parts = []
        for _, row in rows.iterrows():
            low, high = row["verdict_ci_low"], row["verdict_ci_high"]
            bounds = "" if pd.isna(low) else f" [{low:+.1f}, {high:+.1f}]"
            why = f"; {row['open_because']}" if kind == "open" and row["open_because"] else ""
            parts.append(
                f"`{row[key]}` ({row[gain]:+.1f}{unit}{bounds}, {100 * row['verdict_level']:.3g}%, "
                f"n = {row['seeds']}, look {int(row['decided_at_look'])}{why})"
            )
        sentences.append(f"{VERDICT_HEADINGS[kind]}: {', '.join(parts)}.")
    return sentences


def more_seeds_hint(table: pd.DataFrame, knob: str) -> list[str]:
    """What decides a row the seeds left open: more seeds in the looks (conf/decisive lists ten)."""
    ran_out = table[(table["verdict"] == "open") & table["open_because"].astype(str).str.startswith("seeds ran out")]
    if ran_out.empty:
        return []
    return [
        f"To decide the {len(ran_out)} open row(s), list more {knob} for the planned looks (`kedro run --env "
        "decisive`: up to 10 seeds, spent only on the rows still open)."
    ]
