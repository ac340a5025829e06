from kedro.pipeline import Node, Pipeline

from headstart.pipelines.learning_curve.nodes import (
    check_learning_curve_cost,
    estimate_learning_curve_cost,
    run_learning_curve,
    summarise_learning_curve,
)

INPUTS = [
    "source_model",
    "target_train_pool",
    "target_validation_pool",
    "target_test",
    "params:learning_curve",
    "params:transfer",
    "params:ingest",
    "params:runtime",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                estimate_learning_curve_cost,
                INPUTS,
                ["learning_curve_cost_table", "learning_curve_cost"],
                name="estimate_learning_curve_cost",
            ),
            Node(
                check_learning_curve_cost,
                ["learning_curve_cost", "params:runtime"],
                "learning_curve_cost_checked",
                name="check_learning_curve_cost",
            ),
            Node(
                run_learning_curve,
                [*INPUTS, "learning_curve_cost_checked"],
                ["learning_curve", "learning_curve_runs"],
                name="run_learning_curve",
            ),
            Node(
                summarise_learning_curve,
                [
                    "learning_curve",
                    "params:transfer",
                    "params:learning_curve",
                    "target_train_pool",
                    "target_validation_pool",
                    "target_test",
                ],
                ["learning_curve_labels_saved", "learning_curve_labels_saved_markdown", "learning_curve_plot"],
                name="summarise_learning_curve",
            ),
        ]
    )
