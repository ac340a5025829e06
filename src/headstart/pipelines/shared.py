"""Pipeline-building helpers that several pipelines use (transfer, predict, promote), so no pipeline
imports another's modules for them. A module, not a package: `find_pipelines` skips it."""

import warnings

from kedro.pipeline import Node

from headstart import configured


def strategy_names() -> list[str]:
    """The strategies of this run's conf, in the order the comparison lists them."""
    return configured.names("transfer", "strategies")


def node_reading_strategies(function, inputs: list[str], outputs: list[str], name: str) -> Node:
    """A node outside the namespaces that reads each strategy's outputs by their dotted names, as intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return Node(function, inputs, outputs, name=name)
