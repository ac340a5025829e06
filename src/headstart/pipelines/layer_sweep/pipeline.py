from kedro.pipeline import Node, Pipeline

from headstart.pipelines.layer_sweep.nodes import run_layer_sweep, summarise_layer_sweep


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                run_layer_sweep,
                [
                    "source_model",
                    "target_train_pool",
                    "target_validation_pool",
                    "target_test",
                    "params:layer_sweep",
                    "params:ingest",
                    "params:runtime",
                ],
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
