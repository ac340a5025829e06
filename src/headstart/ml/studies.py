"""Data-efficiency and layer studies: many small trainings on one split, each tested alike.

- learning curve: test accuracy against the label budget k; `labels_saved` reads off, for a
  transfer strategy at k, the smallest budget at which the baseline does as well.
- layer sweep (Yosinski et al. 2014): for n = 0..N blocks, three arms on one budget: copied and
  frozen, copied and fine-tuned, and a control whose first n blocks are random and frozen.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from headstart.ml.metrics import evaluation_record
from headstart.ml.strategies import StrategyConfig, StrategyResult, train_strategy
from headstart.ml.training import evaluate, resolve_device
from headstart.ml.transfer import TransferSpec

LAYER_SWEEP_ARMS = ("copied_frozen", "copied_finetuned", "random_frozen")


def train_and_test(
    source_config: dict[str, Any],
    source_state: dict[str, torch.Tensor],
    num_classes: int,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    config: StrategyConfig,
) -> tuple[StrategyResult, dict[str, float]]:
    """One point of a study: train as the strategy says, then the test metrics of the kept model."""
    result = train_strategy(source_config, source_state, num_classes, train, validation, config)
    measured = evaluate(result.model.to(resolve_device(config.training.device)), *test)
    result.model.cpu()
    return result, evaluation_record(measured, result.report.trainable_parameters, result.train_seconds)


def with_min_batches(config: StrategyConfig, batches: int) -> StrategyConfig:
    """The strategy with every training phase making at least `batches` optimizer steps per epoch."""
    probe = replace(config.probe, min_batches_per_epoch=batches) if config.probe else None
    return replace(config, training=replace(config.training, min_batches_per_epoch=batches), probe=probe)


def layer_sweep_spec(arm: str, blocks: int) -> TransferSpec:
    """The transfer of one arm at n = `blocks`; the rest of the body always trains from random."""
    if arm == "copied_frozen":
        return TransferSpec(copy_blocks=blocks, freeze_blocks=blocks)
    if arm == "copied_finetuned":
        return TransferSpec(copy_blocks=blocks, freeze_blocks=0)
    if arm == "random_frozen":
        return TransferSpec(copy_blocks=0, freeze_blocks=blocks)
    raise ValueError(f"unknown layer-sweep arm '{arm}'; known: {', '.join(LAYER_SWEEP_ARMS)}")


def layer_sweep_config(base: StrategyConfig, arm: str, blocks: int) -> StrategyConfig:
    return replace(base, procedure="fit", spec=layer_sweep_spec(arm, blocks))


def labels_saved(curve: pd.DataFrame, baseline: str = "scratch") -> pd.DataFrame:
    """For each transfer strategy and budget: the smallest budget at which the baseline's mean test
    accuracy reaches the strategy's, and the labels per class that saves (or "not reached").

    `curve` has rows of (strategy, labels_per_class, k, seed, accuracy); `k` is the numeric budget
    (for "all", the mean images per class) and `labels_per_class` its label."""
    means = curve.groupby(["strategy", "labels_per_class", "k"], as_index=False, sort=False)["accuracy"].mean()
    base = means[means["strategy"] == baseline].sort_values("k")
    rows = []
    for _, point in means[means["strategy"] != baseline].iterrows():
        reached = base[base["accuracy"] >= point["accuracy"]]
        matched = reached.iloc[0] if len(reached) else None
        rows.append(
            {
                "strategy": point["strategy"],
                "labels_per_class": point["labels_per_class"],
                "accuracy": point["accuracy"],
                f"{baseline}_matches_at": matched["labels_per_class"] if matched is not None else "not reached",
                f"{baseline}_accuracy_there": matched["accuracy"] if matched is not None else math.nan,
                "labels_saved_per_class": (
                    round(matched["k"] - point["k"], 1) if matched is not None else "not reached"
                ),
            }
        )
    return pd.DataFrame(rows)
