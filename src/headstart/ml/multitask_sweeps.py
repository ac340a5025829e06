"""Moved to headstart.ml.multitask.sweeps and headstart.ml.multitask.sweep_points; this module keeps the
old import path working until its last importer (headstart.params) imports from there."""

from headstart.ml.multitask.sweep_points import SweepPoint, capacity_points, labels_points, presence_tasks, scaled_trunk
from headstart.ml.multitask.sweeps import (
    SweepRun,
    capacity_sweep,
    equal_weighting_of,
    labels_tasks_sweep,
    run_sweep,
    single_task_baseline,
    sweep_table,
)

__all__ = [
    "SweepPoint",
    "SweepRun",
    "capacity_points",
    "capacity_sweep",
    "equal_weighting_of",
    "labels_points",
    "labels_tasks_sweep",
    "presence_tasks",
    "run_sweep",
    "scaled_trunk",
    "single_task_baseline",
    "sweep_table",
]
