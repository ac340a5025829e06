from kedro.pipeline import Node, Pipeline

from headstart.pipelines.multitask_capacity.nodes import sweep_multitask_capacity

OUTPUTS = ["multitask_capacity_sweep", "multitask_capacity_sweep_markdown", "multitask_capacity_sweep_chart"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                sweep_multitask_capacity,
                [
                    "multitask_train",
                    "multitask_validation",
                    "multitask_test",
                    "params:multitask",
                    "params:multitask_sweeps",
                    "params:runtime",
                ],
                [*OUTPUTS, "multitask_capacity_sweep_runs"],
                name="sweep_multitask_capacity",
            )
        ]
    )
