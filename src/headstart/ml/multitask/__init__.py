"""Multi-task learning: one network for several tasks, its per-task losses masked where a label is
missing and combined by a loss weighting, compared with one network per task.

- weightings/: one file per loss weighting behind `LossWeighting`, filed by name (`register_weighting`);
- objective: the masked per-task losses and `fit`'s objective that weights them;
- training: a method's networks over seeds, its grid raced on validation, the recipe a worker runs;
- evaluation: the trained networks stored, measured on the test split and costed;
- cost, looks: the first look priced before training; the planned looks over seeds;
- sweep_points, sweeps: the capacity and labels × tasks sweeps, each point a small comparison.

The names below are the package's public face; the modules import each other directly.
"""

from headstart.ml.multitask.evaluation import (
    evaluate_methods,
    inference_seconds,
    merged_history,
    stored_networks,
    validation_curves,
)
from headstart.ml.multitask.objective import (
    MultiTaskObjective,
    evaluate_multitask,
    masked_losses,
    outputs_per_task,
    task_loss,
    task_predictions,
)
from headstart.ml.multitask.training import (
    MethodRecipe,
    TrainedNetwork,
    TunedMethod,
    method_config,
    method_parts,
    train_method,
    tune_method,
    tune_part,
)
from headstart.ml.multitask.weightings import (
    WEIGHTINGS,
    FAMOWeighting,
    FixedWeighting,
    GradNormWeighting,
    LossWeighting,
    PCGradWeighting,
    SharedGradientWeighting,
    UncertaintyWeighting,
    UPGradWeighting,
    WeightingParams,
    build_weighting,
    register_weighting,
    tunable_knobs,
    weighting_knobs,
)

__all__ = [
    "WEIGHTINGS",
    "FAMOWeighting",
    "FixedWeighting",
    "GradNormWeighting",
    "LossWeighting",
    "MethodRecipe",
    "MultiTaskObjective",
    "PCGradWeighting",
    "SharedGradientWeighting",
    "TrainedNetwork",
    "TunedMethod",
    "UPGradWeighting",
    "UncertaintyWeighting",
    "WeightingParams",
    "build_weighting",
    "evaluate_methods",
    "evaluate_multitask",
    "inference_seconds",
    "masked_losses",
    "merged_history",
    "method_config",
    "method_parts",
    "outputs_per_task",
    "register_weighting",
    "stored_networks",
    "task_loss",
    "task_predictions",
    "train_method",
    "tune_method",
    "tune_part",
    "tunable_knobs",
    "validation_curves",
    "weighting_knobs",
]
