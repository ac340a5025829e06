from kedro.pipeline import Node, Pipeline

from headstart.pipelines.pretrain.nodes import prepare_source_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                prepare_source_model,
                ["source_train", "source_validation", "catalogued_source_model", "params:pretrain", "params:runtime"],
                ["source_model", "pretrain_summary", "pretrain_run"],
                name="prepare_source_model",
            )
        ]
    )
