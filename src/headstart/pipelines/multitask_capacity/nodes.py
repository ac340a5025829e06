"""A thin node over headstart.ml.multitask.sweeps.capacity_sweep."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from headstart.ml.data.images import LabelledImages
from headstart.ml.multitask.sweeps import capacity_sweep
from headstart.multitask_params import MultitaskParams, MultitaskSweepsParams
from headstart.params import RuntimeParams


def sweep_multitask_capacity(
    multitask_train: LabelledImages,
    multitask_validation: LabelledImages,
    multitask_test: LabelledImages,
    multitask: MultitaskParams,
    multitask_sweeps: MultitaskSweepsParams,
    runtime: RuntimeParams,
) -> tuple[pd.DataFrame, str, Figure, list[dict]]:
    """The multi-task comparison's data and methods at each width of multitask.trunk.architecture."""
    return capacity_sweep(
        multitask.scratch_trunk(int(multitask_train.images.shape[1])),
        multitask_sweeps.capacity.width_multipliers,
        (multitask_train, multitask_validation, multitask_test),
        multitask_sweeps.setup(multitask, runtime),
    )
