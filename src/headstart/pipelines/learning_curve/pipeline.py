from kedro.pipeline import Node, Pipeline

from headstart.pipelines.learning_curve.nodes import run_learning_curve, summarise_learning_curve


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                run_learning_curve,
                [
                    "source_model",
                    "target_train_pool",
                    "target_validation_pool",
                    "target_test",
                    "params:learning_curve",
                    "params:transfer",
                    "params:ingest",
                    "params:runtime",
                ],
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
