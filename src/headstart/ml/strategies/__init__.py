"""Every transfer strategy, one file each, registered by the name the conf gives it (DESIGN.md, "Methods
as files"). To add one: write `ml/strategies/<name>.py` with a `Strategy` subclass decorated by
`@register` (its name, family, `Knobs` and `train`; or an `ObjectiveStrategy` with its `objective`),
import it below, and give it a conf entry under `transfer.strategies`.
"""

from headstart.ml.strategies import (  # noqa: F401  every strategy module, so each registers itself
    bss,
    coral,
    dann,
    delta,
    fit,
    fixmatch,
    importance_weighting,
    l2_sp,
    linear_classifier,
    lwf,
    nearest_neighbours,
    probe_then_finetune,
    rkd,
    similarity_preserving,
    tradaboost,
)
from headstart.ml.strategies.base import (
    SOURCE_IMAGES,
    STRATEGIES,
    UNLABELLED_TARGET,
    Knobs,
    Strategy,
    StrategyConfig,
    StrategyResult,
    TargetTask,
    extract_features,
    register,
    strategy_named,
    strategy_of,
    target_task,
    train_strategy,
)
from headstart.ml.strategies.tuning import TUNED_SETTINGS, TunedStrategy, seed_stacks, train_tuned

__all__ = [
    "SOURCE_IMAGES",
    "STRATEGIES",
    "TUNED_SETTINGS",
    "UNLABELLED_TARGET",
    "Knobs",
    "Strategy",
    "StrategyConfig",
    "StrategyResult",
    "TargetTask",
    "TunedStrategy",
    "extract_features",
    "register",
    "seed_stacks",
    "strategy_named",
    "strategy_of",
    "target_task",
    "train_strategy",
    "train_tuned",
]
