from kedro.pipeline import Node, Pipeline

from headstart.pipelines.multitask.nodes import (
    build_multitask_data,
    compare_multitask_methods,
    estimate_multitask_cost,
    evaluate_multitask_methods,
    train_multitask_methods,
)

SPLITS = ["multitask_train", "multitask_validation", "multitask_test"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_multitask_data,
                [
                    "target_train_pool",
                    "target_validation_pool",
                    "target_test",
                    "source_train",
                    "source_validation",
                    "params:multitask",
                    "params:ingest",
                ],
                SPLITS,
                name="build_multitask_data",
            ),
            Node(
                estimate_multitask_cost,
                ["multitask_train", "multitask_validation", "source_model", "params:multitask", "params:runtime"],
                ["multitask_cost_table", "multitask_cost"],
                name="estimate_multitask_cost",
            ),
            Node(
                train_multitask_methods,
                [*SPLITS, "source_model", "multitask_cost", "params:multitask", "params:runtime"],
                ["multitask_models", "multitask_looks"],
                name="train_multitask_methods",
            ),
            Node(
                evaluate_multitask_methods,
                ["multitask_models", "multitask_test", "params:runtime"],
                ["multitask_results", "multitask_runs"],
                name="evaluate_multitask_methods",
            ),
            Node(
                compare_multitask_methods,
                ["multitask_results", "multitask_models", "multitask_looks", "params:multitask", *SPLITS],
                [
                    "multitask_comparison",
                    "multitask_comparison_markdown",
                    "multitask_comparison_chart",
                    "multitask_validation_curves",
                ],
                name="compare_multitask_methods",
            ),
        ]
    )
