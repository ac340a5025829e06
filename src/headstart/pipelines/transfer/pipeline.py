"""One `transfer` template, instanced once per strategy namespace, so the baseline runs the same code.

The namespaces are the entries of `transfer.strategies` in conf: adding a strategy is a conf edit
(its data sets come from the catalog's `{strategy}.*` factories).
"""

import warnings
from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from headstart import configured
from headstart.pipelines.transfer.nodes import (
    choose_best_model,
    compare_strategies,
    evaluate_target_models,
    train_target_models,
)

SHARED_INPUTS = {"source_model", "target_train", "target_validation", "target_test"}


def strategy_names() -> list[str]:
    """The strategies of this run's conf, in the order the comparison lists them."""
    return configured.names("transfer", "strategies")


def _for_strategy(function, strategy: str):
    return update_wrapper(partial(function, strategy=strategy), function)


def strategy_template(strategy: str) -> Pipeline:
    return Pipeline(
        [
            Node(
                _for_strategy(train_target_models, strategy),
                ["source_model", "target_train", "target_validation", "params:transfer", "params:runtime"],
                "target_models",
                name="train_target_models",
            ),
            Node(
                _for_strategy(evaluate_target_models, strategy),
                ["target_models", "target_test", "params:runtime"],
                ["test_evaluation", "training_runs"],
                name="evaluate_target_models",
            ),
        ]
    )


def node_reading_strategies(function, inputs: list[str], outputs: list[str], name: str) -> Node:
    """A node outside the namespaces that reads each strategy's outputs by their dotted names, as intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain '.'")
        return Node(function, inputs, outputs, name=name)


def create_pipeline(**kwargs) -> Pipeline:
    names = strategy_names()
    strategies = [
        Pipeline(
            strategy_template(s), namespace=s, inputs=SHARED_INPUTS, parameters={"params:transfer", "params:runtime"}
        )
        for s in names
    ]
    comparison = node_reading_strategies(
        compare_strategies,
        [
            "target_train",
            "target_validation",
            "target_test",
            "params:transfer",
            *(f"{s}.test_evaluation" for s in names),
        ],
        ["transfer_comparison", "transfer_comparison_markdown", "transfer_comparison_chart"],
        "compare_strategies",
    )
    best_model = node_reading_strategies(
        choose_best_model, ["target_test", *(f"{s}.target_models" for s in names)], "best_model", "choose_best_model"
    )
    return sum(strategies, Pipeline([comparison, best_model]))
