"""One `transfer` template, instanced once per strategy namespace, so the baseline runs the same code.

The namespaces are the entries of `transfer.strategies` in conf: adding a strategy is a conf edit
(its data sets come from the catalog's `{strategy}.*` factories). Before any of them trains, the
shared `estimate_cost` node prices the whole grid and `check_cost_limit` holds it to
runtime.time_budget_minutes: every training node takes the check's output, so Kedro runs both first.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from headstart import configured
from headstart.ml.strategies import SOURCE_IMAGES, UNLABELLED_TARGET, strategy_of
from headstart.pipelines.shared import node_reading_strategies, strategy_names
from headstart.pipelines.transfer.nodes import (
    check_cost_limit,
    choose_best_model,
    compare_strategies,
    estimate_cost,
    evaluate_target_models,
    gather_first_look,
    run_later_looks,
    summarise_calibration,
    train_target_models,
)

SHARED_INPUTS = {
    "source_model",
    "target_train",
    "target_validation",
    "target_test",
    "source_train",
    "target_unlabelled",
    "transfer_cost_checked",
    "source_candidates",
}


def _for_strategy(function, strategy: str):
    return update_wrapper(partial(function, strategy=strategy), function)


def _conf_of(strategy: str) -> dict:
    """The strategy's entry in this run's conf, as written (the pipeline is built before typed parameters)."""
    return configured.parameters()["transfer"]["strategies"][strategy] or {}


def source_of(strategy: str) -> str:
    """The data set the strategy's source model comes from: an advise candidate's when it names one."""
    return "source_candidates" if _conf_of(strategy).get("source") else "source_model"


def images_used(strategy: str) -> list[str]:
    """The data sets beyond the target labels that the strategy trains on: only these reach its node."""
    params = _conf_of(strategy)
    name = (params.get("adaptation") or {}).get("kind") or params.get("procedure", "fit")
    uses = strategy_of(name, params.get("model", "source")).uses
    return [
        *(["source_train"] if SOURCE_IMAGES in uses else []),
        *(["target_unlabelled"] if UNLABELLED_TARGET in uses else []),
    ]


def strategy_template(strategy: str) -> Pipeline:
    inputs = {
        "source_model": source_of(strategy),
        "target_train": "target_train",
        "target_validation": "target_validation",
        "transfer": "params:transfer",
        "runtime": "params:runtime",
        **{name: name for name in images_used(strategy)},
        "cost_checked": "transfer_cost_checked",  # after the estimate and its limit
    }
    return Pipeline(
        [
            Node(
                _for_strategy(train_target_models, strategy),
                inputs,
                "trained_models",
                name="train_target_models",
            ),
            Node(  # stores the models first: a child run refers to its model only once that is saved
                _for_strategy(evaluate_target_models, strategy),
                [
                    "trained_models",
                    "target_train",
                    "target_validation",
                    "target_test",
                    "params:transfer",
                    "params:runtime",
                ],
                ["target_models", "test_evaluation", "training_runs"],
                name="evaluate_target_models",
            ),
        ]
    )


def comparison_inputs(names: list[str]) -> dict[str, str]:
    """What the nodes over every strategy read: the splits, the parameters, the images any strategy uses
    and, when one names an advise candidate, the candidates."""
    used = sorted({image_set for name in names for image_set in images_used(name)})
    sourced = any(source_of(name) != "source_model" for name in names)
    return {
        "source_model": "source_model",
        "target_train": "target_train",
        "target_validation": "target_validation",
        "target_test": "target_test",
        "transfer": "params:transfer",
        "runtime": "params:runtime",
        **{name: name for name in used},
        **({"source_candidates": "source_candidates"} if sourced else {}),
    }


def cost_nodes(names: list[str]) -> list[Node]:
    """The estimate of every strategy's trainings (it reads the images any of them uses), and its check."""
    inputs = comparison_inputs(names)  # with the source candidates: every source a strategy names exists
    return [
        Node(estimate_cost, inputs, ["transfer_cost_table", "transfer_cost"], name="estimate_cost"),
        Node(
            check_cost_limit,
            ["transfer_cost", "params:transfer", "params:runtime"],
            "transfer_cost_checked",
            name="check_cost_limit",
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    names = strategy_names()
    templates = {s: strategy_template(s) for s in names}
    strategies = [
        Pipeline(
            template,
            namespace=s,
            inputs=SHARED_INPUTS & template.inputs(),
            parameters={"params:transfer", "params:runtime"},
        )
        for s, template in templates.items()
    ]
    first_look = node_reading_strategies(
        gather_first_look, [f"{s}.test_evaluation" for s in names], "transfer_first_look", "gather_first_look"
    )
    later = Node(
        run_later_looks,
        {**comparison_inputs(names), "first_look": "transfer_first_look", "cost_checked": "transfer_cost_checked"},
        ["transfer_later_look_models", "transfer_looks", "transfer_later_look_runs"],  # models stored first
        name="run_later_looks",
    )
    comparison = Node(
        compare_strategies,
        [
            "target_train",
            "target_validation",
            "target_test",
            "params:transfer",
            "transfer_first_look",
            "transfer_looks",
        ],
        ["transfer_comparison", "transfer_comparison_markdown", "transfer_comparison_chart"],
        name="compare_strategies",
    )
    calibration = Node(
        summarise_calibration,
        ["transfer_first_look", "transfer_looks", "params:transfer"],
        ["transfer_selective_prediction", "transfer_reliability_chart", "transfer_risk_coverage_chart"],
        name="summarise_calibration",
    )
    best_model = node_reading_strategies(
        choose_best_model, ["target_test", *(f"{s}.target_models" for s in names)], "best_model", "choose_best_model"
    )
    return sum(strategies, Pipeline([*cost_nodes(names), first_look, later, comparison, calibration, best_model]))
