"""The multi-task reports: the methods against single-task networks, by the planned looks on Δp, and
the sweeps (capacity, labels × tasks), where multi-task wins or loses by Δm at each point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from headstart.ml.data.images import LabelledImages
from headstart.ml.reports.common import SEED_VARIANCE, SELECTION, more_seeds_hint, seeds_text, verdict_sentences


def plateau_text(curves: pd.DataFrame, method: str, last: int = 5) -> str:
    """Where `method`'s mean validation curve ends: its best epoch and how much its last epochs moved."""
    curve = curves[curves["method"] == method].sort_values("epoch")
    if curve.empty:
        return ""
    accuracy = curve["validation_accuracy"].to_numpy()
    best = int(curve["epoch"].iloc[accuracy.argmax()])
    tail = accuracy[-last:]
    return (
        f"`{method}`'s mean validation accuracy peaks at epoch {best} of {int(curve['epoch'].max())} "
        f"({accuracy.max():.3f}); over its last {len(tail)} epochs it spans {tail.min():.3f}–{tail.max():.3f} "
        "(multitask_validation_curves.png)."
    )


def multitask_verdict(comparison: pd.DataFrame, looks: Mapping, baseline: str, labels: str) -> str:
    """The multi-task comparison in plain words, method by method as the planned looks decided it, by Δp
    against the single-task networks (positive = better; Δm has the opposite sign)."""
    sentences = [
        f"With {labels}, against `{baseline}` (one network per task): Δp in % (positive = better; Δm has the "
        "opposite sign), paired by seed, with its interval at the level of the look that decided it. " + looks["design"]
    ]
    sentences += verdict_sentences(comparison[comparison["method"] != baseline], "method", "delta_p", "%")
    cut = [line for look in looks["looks"] for line in look.get("cut", [])]
    if cut:
        sentences.append(f"Not run for lack of time: {'; '.join(cut)}.")
    sentences += more_seeds_hint(comparison, "`multitask.seeds`")
    return " ".join(sentences)


def multitask_report(
    comparison: pd.DataFrame,
    looks: Mapping,
    curves: pd.DataFrame,
    data_kind: str,
    train: LabelledImages,
    validation: LabelledImages,
    test: LabelledImages,
    seeds: Sequence[int],
    epochs: int,
    baseline: str,
    lr_scales: Sequence[float] = (1.0,),
    racing_eta: int | None = None,
) -> str:
    """The multi-task comparison in Markdown: its verdict, protocol, sign conventions and the table of methods."""
    labels = f"{len(train)} training + {len(validation)} validation images (tasks: {', '.join(train.labels)})"
    return "\n".join(
        [
            "# Multi-task methods against single-task networks",
            "",
            "## Verdict",
            "",
            multitask_verdict(comparison, looks, baseline, labels),
            "",
            "## Protocol",
            "",
            f"- Data ({data_kind}): train {len(train)}, validation {len(validation)}, "
            f"test {len(test)} images, each labelled for every task ({', '.join(train.labels)}) "
            "unless marked missing. Multi-digit pairs are drawn within the target train pool, the whole validation "
            "split and the test split respectively, so every method uses the same labels, validation included.",
            f"- {looks['design']} {SEED_VARIANCE}",
            f"- One budget for every method ({epochs} epochs at most). Every method, `{baseline}` included, is tuned "
            f"on validation only: its grid is the rates times {', '.join(f'{x:g}' for x in lr_scales)}, and its "
            "own settings where conf lists them (`tune`), each candidate over every seed, the best mean validation "
            "accuracy kept (column `tuned`); "
            + (
                f"the grid is raced by successive halving (η = {racing_eta}: every candidate trains a share of the "
                "budget, the best 1/η go on). "
                if racing_eta
                else "every candidate trains to the end. "
            )
            + f"Each of `{baseline}`'s networks is tuned for its own task. {SELECTION}",
            f"- {plateau_text(curves, baseline)}",
            "",
            "## Results",
            "",
            "Per task: mean test accuracy over the method's seeds (column `seeds`) with its 95% t-interval. "
            f"Δm (Maninis et al. 2019): mean relative change of every task's accuracy and macro-F1 against "
            f"`{baseline}`, in %, **positive = worse**. Δp (LibMTL): per task the mean relative change "
            "of its metrics, then the mean over tasks, in %, **positive = better** (with the same metrics for every "
            "task, Δp = −Δm). Both are computed per seed (paired) and given with their 95% interval. Cost: parameters, "
            "training seconds and inference seconds on the test split, of one multi-task network vs all "
            "single-task networks; `step_cost`: seconds per epoch (the same data and batch size for every method) "
            "over those of the hard-sharing method with fixed weights.",
            "",
            comparison.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )


def sweep_point_text(values: Mapping) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def multitask_sweep_verdict(table: pd.DataFrame, dimensions: Sequence[str], baseline: str) -> str:
    """Where multi-task wins (Δm's interval clear below zero), where it loses (clear above) and how many
    method × point pairs are inside the noise, in plain words, computed from the sweep's table."""
    methods = table[table["method"] != baseline]

    def where(rows: pd.DataFrame) -> str:
        return "; ".join(
            f"{row['method']} at {sweep_point_text({d: row[d] for d in dimensions})} "
            f"(Δm {row['delta_m']:+.1f} % [{row['delta_m_ci_low']:+.1f}, {row['delta_m_ci_high']:+.1f}])"
            for _, row in rows.iterrows()
        )

    wins = methods[methods["delta_m_ci_high"] < 0]
    losses = methods[methods["delta_m_ci_low"] > 0]
    inside = len(methods) - len(wins) - len(losses)
    return " ".join(
        [
            f"Against `{baseline}` at the same point (Δm in %, positive = worse, paired by seed, "
            f"95% interval; {seeds_text(table)}):",
            f"multi-task wins, the interval clear below zero, at {where(wins)}."
            if len(wins)
            else "multi-task wins nowhere with an interval clear of zero.",
            f"It loses, the interval clear above zero, at {where(losses)}."
            if len(losses)
            else "It loses nowhere with an interval clear of zero.",
            f"{inside} of {len(methods)} method × point pairs are inside the noise (the interval spans zero, "
            "or one seed gives none).",
        ]
    )


def multitask_sweep_report(
    title: str, table: pd.DataFrame, dimensions: Sequence[str], baseline: str, protocol: Sequence[str]
) -> str:
    """A multi-task sweep in Markdown: its verdict in words, its protocol, then the table."""
    return "\n".join(
        [
            f"# {title}",
            "",
            "## Verdict",
            "",
            multitask_sweep_verdict(table, dimensions, baseline),
            "",
            "## Protocol",
            "",
            *(f"- {line}" for line in protocol),
            f"- {SELECTION}",
            "",
            "## Results",
            "",
            f"Per point and method: `mean_accuracy`, the test accuracy averaged over the tasks and seeds; Δm "
            f"(Maninis et al. 2019) against `{baseline}` at the same point, in %, **positive = worse**; Δp, "
            "positive = better; both paired by seed with their 95% t-interval; cost as in the multi-task comparison.",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
