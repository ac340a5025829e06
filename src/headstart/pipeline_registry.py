"""Project pipelines. The default run is the experiment (ingest → pretrain → transfer, multitask); the
studies (learning_curve, layer_sweep, multitask_capacity, multitask_labels) train tens of models each
and run when named, as does `retrain` (its own package: the default plus champion promotion, for the
Airflow schedule)."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

DEFAULT = ("ingest", "pretrain", "transfer", "multitask")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)  # Kedro 1.7 loads only the pipelines a run names
    if all(name in pipelines for name in DEFAULT):
        pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT), Pipeline([]))
    return pipelines
