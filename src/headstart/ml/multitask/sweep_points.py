"""The points of the multi-task sweeps: at each, the trunk and the data its methods train on.

- capacity: the comparison's own data at each trunk width (`capacity_points`);
- labels per task × number of tasks × trunk: digit-presence tasks on digit pairs, which share every
  low-level feature (`labels_points`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import digit_presence, overlay_digit_pairs, with_tasks


@dataclass
class SweepPoint:
    """One setting of a sweep (`values`, e.g. {"width_multiplier": 0.5}) and what its methods train on."""

    values: dict[str, Any]
    trunk: dict
    train: LabelledImages
    validation: LabelledImages
    test: LabelledImages
    source_state: dict[str, torch.Tensor] | None = None


def scaled_trunk(trunk: dict, multiplier: float) -> dict:
    """The trunk with every block's channels times `multiplier` (at least 1)."""
    if "widths" not in trunk:
        raise ValueError(
            "multitask_sweeps.capacity: width multipliers need a trunk with `widths` (multitask.trunk.architecture: "
            f"small_cnn, init: scratch), not {trunk.get('name')}"
        )
    return {**trunk, "widths": [max(1, round(width * multiplier)) for width in trunk["widths"]]}


def capacity_points(
    trunk: dict, multipliers: Sequence[float], splits: tuple[LabelledImages, LabelledImages, LabelledImages]
) -> list[SweepPoint]:
    """The multi-task comparison's data at each trunk width."""
    return [SweepPoint({"width_multiplier": float(m)}, scaled_trunk(trunk, m), *splits) for m in multipliers]


def presence_tasks(
    pools: tuple[LabelledImages, LabelledImages, LabelledImages],
    labels_per_task: int,
    tasks: int,
    validation_pairs: int,
    test_pairs: int,
    seed: int,
) -> tuple[LabelledImages, LabelledImages, LabelledImages]:
    """Digit pairs labelled `has_<digit>` for the first `tasks` digit classes: tasks that share every
    low-level feature. Each training image carries a label for every task, so labels per task =
    training images; validation and test keep their size at every point."""
    train_pool, validation_pool, test_pool = pools
    splits = [
        digit_presence(overlay_digit_pairs(pool, pairs, seed + offset))
        for offset, (pool, pairs) in enumerate(
            ((train_pool, labels_per_task), (validation_pool, validation_pairs), (test_pool, test_pairs))
        )
    ]
    available = list(splits[0].labels)
    if tasks > len(available):
        raise ValueError(
            f"multitask_sweeps.labels_and_tasks.tasks: {tasks} tasks asked, the digits give {len(available)}"
        )
    return tuple(with_tasks(split, available[:tasks]) for split in splits)


def labels_points(
    pools: tuple[LabelledImages, LabelledImages, LabelledImages],
    labels_per_task: Sequence[int],
    task_counts: Sequence[int],
    trunks: Mapping[str, tuple[dict, dict[str, torch.Tensor] | None]],
    validation_pairs: int,
    test_pairs: int,
    seed: int,
) -> list[SweepPoint]:
    """Every labels × tasks × trunk point; `trunks` maps scratch / source to (trunk config, weights)."""
    points = []
    for labels in labels_per_task:
        for tasks in task_counts:
            splits = presence_tasks(pools, labels, tasks, validation_pairs, test_pairs, seed)
            for trunk_name, (trunk, state) in trunks.items():
                values = {"labels_per_task": labels, "tasks": tasks, "trunk": trunk_name}
                points.append(SweepPoint(values, trunk, *splits, source_state=state))
    return points
