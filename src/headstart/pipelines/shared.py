"""Pipeline-building helpers that several pipelines use (transfer, predict, promote), so no pipeline
imports another's modules for them. A module, not a package: `find_pipelines` skips it."""

import warnings

from kedro.pipeline import Node

from headstart import configured
from headstart.ml.strategies import StrategyConfig
from headstart.params import RuntimeParams, StrategyParams


def strategy_names() -> list[str]:
    """The strategies of this run's conf that it compares (`transfer.leave_out` excepted), in order."""
    left_out = set(configured.parameters().get("transfer", {}).get("leave_out") or [])
    return [name for name in configured.names("transfer", "strategies") if name not in left_out]


def node_reading_strategies(function, inputs: list[str], outputs: list[str] | str, name: str) -> Node:
    """A node outside the namespaces that reads each strategy's outputs by their dotted names, as intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return Node(function, inputs, outputs, name=name)


def configure_strategy(params: StrategyParams, runtime: RuntimeParams, setting: dict, seed: int) -> StrategyConfig:
    """A strategy's config for one candidate of its grid and a seed; a module-level function, so a
    worker process can unpickle it (the learning curve's points) and the advice's race shares it."""
    return params.to_config(seed, runtime, **setting)
