"""A package of its own, not composed in the registry: Kedro 1.7 imports only the pipeline packages
a run names, so `kedro run --pipelines=retrain` must find one."""

from kedro.pipeline import Pipeline

from headstart.pipelines import ingest, pretrain, promote, transfer


def create_pipeline(**kwargs) -> Pipeline:
    return (
        ingest.create_pipeline() + pretrain.create_pipeline() + transfer.create_pipeline() + promote.create_pipeline()
    )
