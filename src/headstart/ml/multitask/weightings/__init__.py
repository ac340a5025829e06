"""Loss weightings: one file each behind `LossWeighting`, filed by name in WEIGHTINGS.

Every per-task loss averages over its labelled entries; a task with no label in a batch is left out of
`losses` and contributes nothing (no NaN) under every weighting (REFERENCE.md).

Adding one: a file here with a `LossWeighting` subclass decorated `@register_weighting("<kind>")`, its
knobs the keyword arguments of its constructor, and its import below (each module is imported here
explicitly, so the registry holds every weighting once the package is imported).
"""

from headstart.ml.multitask.weightings.base import (
    WEIGHTINGS,
    LossWeighting,
    NonNegative,
    Rate,
    SharedGradientWeighting,
    WeightingParams,
    build_weighting,
    checked_knobs,
    register_weighting,
    tunable_knobs,
    weighting_knobs,
)
from headstart.ml.multitask.weightings.famo import FAMOWeighting
from headstart.ml.multitask.weightings.fixed import FixedWeighting
from headstart.ml.multitask.weightings.gradnorm import GradNormWeighting
from headstart.ml.multitask.weightings.pcgrad import PCGradWeighting
from headstart.ml.multitask.weightings.uncertainty import UncertaintyWeighting
from headstart.ml.multitask.weightings.upgrad import UPGradWeighting

__all__ = [
    "WEIGHTINGS",
    "FAMOWeighting",
    "FixedWeighting",
    "GradNormWeighting",
    "LossWeighting",
    "NonNegative",
    "PCGradWeighting",
    "Rate",
    "SharedGradientWeighting",
    "UPGradWeighting",
    "UncertaintyWeighting",
    "WeightingParams",
    "build_weighting",
    "checked_knobs",
    "register_weighting",
    "tunable_knobs",
    "weighting_knobs",
]
