from kedro.pipeline import Node, Pipeline

from headstart.pipelines.multitask_labels.nodes import sweep_multitask_labels

OUTPUTS = [
    "multitask_labels_tasks_sweep",
    "multitask_labels_tasks_sweep_markdown",
    "multitask_labels_tasks_sweep_chart",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                sweep_multitask_labels,
                [
                    "target_train_pool",
                    "target_validation_pool",
                    "target_test",
                    "source_model",
                    "params:multitask",
                    "params:multitask_sweeps",
                    "params:runtime",
                ],
                [*OUTPUTS, "multitask_labels_tasks_sweep_runs"],
                name="sweep_multitask_labels",
            )
        ]
    )
