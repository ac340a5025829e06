from kedro.pipeline import Node, Pipeline

from headstart.pipelines.ingest.nodes import (
    load_source_images,
    load_target_images,
    split_source_and_target,
    summarise_datasets,
)

MODEL_INPUTS = [
    "source_train",
    "source_validation",
    "target_train_pool",
    "target_train",
    "target_validation_pool",
    "target_validation",
    "target_test",
    "target_unlabelled",
]


def create_pipeline(**kwargs) -> Pipeline:
    """Namespace `ingest` groups the nodes (one Airflow task, one Kedro-Viz group; their in-memory
    hand-offs stay in one process) without renaming the data sets."""
    return Pipeline(
        [
            Node(load_source_images, "params:ingest", "source_images", name="load_source_images"),
            Node(load_target_images, "params:ingest", "target_images", name="load_target_images"),
            Node(
                split_source_and_target,
                ["source_images", "target_images", "params:ingest"],
                MODEL_INPUTS,
                name="split_source_and_target",
            ),
            Node(
                summarise_datasets,
                [*MODEL_INPUTS, "params:ingest"],
                ["ingest_statistics", "ingest_sample_grid"],
                name="summarise_datasets",
            ),
        ],
        namespace="ingest",
        prefix_datasets_with_namespace=False,
    )
