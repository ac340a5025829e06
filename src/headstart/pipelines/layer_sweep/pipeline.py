from kedro.pipeline import Node, Pipeline

from headstart.pipelines.layer_sweep.nodes import (
    check_layer_sweep_cost,
    estimate_layer_sweep_cost,
    run_layer_sweep,
    summarise_layer_sweep,
)

INPUTS = [
    "source_model",
    "target_train_pool",
    "target_validation_pool",
    "target_test",
    "params:layer_sweep",
    "params:ingest",
    "params:runtime",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                estimate_layer_sweep_cost,
                INPUTS,
                ["layer_sweep_cost_table", "layer_sweep_cost"],
                name="estimate_layer_sweep_cost",
            ),
            Node(
                check_layer_sweep_cost,
                ["layer_sweep_cost", "params:runtime"],
                "layer_sweep_cost_checked",
                name="check_layer_sweep_cost",
            ),
            Node(
                run_layer_sweep,
                [*INPUTS, "layer_sweep_cost_checked"],
                ["layer_sweep", "layer_sweep_runs"],
                name="run_layer_sweep",
            ),
            Node(
                summarise_layer_sweep,
                ["layer_sweep", "params:layer_sweep", "target_test"],
                ["layer_sweep_summary", "layer_sweep_markdown", "layer_sweep_plot"],
                name="summarise_layer_sweep",
            ),
        ]
    )
