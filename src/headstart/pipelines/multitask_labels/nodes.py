"""A thin node over headstart.ml.multitask.sweeps.labels_tasks_sweep."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.multitask.sweep_points import labels_points
from headstart.ml.multitask.sweeps import labels_tasks_sweep
from headstart.multitask_params import MultitaskParams, MultitaskSweepsParams
from headstart.params import RuntimeParams


def sweep_multitask_labels(
    target_train_pool: LabelledImages,
    target_validation_pool: LabelledImages,
    target_test: LabelledImages,
    source_model: dict[str, StoredModel],
    multitask: MultitaskParams,
    multitask_sweeps: MultitaskSweepsParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, str, Figure, list[dict]]:
    """Digit-presence tasks at each labels per task × number of tasks × trunk start."""
    sweep = multitask_sweeps.labels_and_tasks
    points = labels_points(
        (target_train_pool, target_validation_pool, target_test),
        sweep.labels_per_task,
        sweep.tasks,
        multitask_sweeps.trunks(multitask, source_model["source"], int(target_train_pool.images.shape[1])),
        sweep.validation_pairs,
        sweep.test_pairs,
        sweep.seed,
    )
    return labels_tasks_sweep(points, multitask_sweeps.setup(multitask, runtime, sweep.min_batches_per_epoch))
