"""Kedro hooks: MLflow tracking for every `kedro run` (our own small hook: kedro-mlflow breaks on
MLflow 3.13+), and the run's configuration for pipelines built from conf.

One MLflow run per `kedro run`, tagged with the Kedro run id, git commit, pipelines and the
catalog versions loaded and saved, holding every parameter. A catalog entry opts into logging
with `metadata: {mlflow: metrics}` (numbers of a dict as metrics, the dict as JSON) or
`{mlflow: artifact}` (a figure, dict or text file), or `{mlflow: child_runs}`: a list of run
records (run_name, params, history, metrics) logged as child runs of the `kedro run`'s run, one
per strategy × seed, so nodes return data and never call MLflow themselves.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

import click
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset, MemoryDataset
from kedro.io.core import VersionNotFoundError
from kedro_datasets.partitions import PartitionedDataset
from pydantic import ValidationError

from headstart import configured
from headstart.ml import distributed
from headstart.ml.training import resolve_device, trains_in_bf16
from headstart.orchestration import PARENT_RUN_VARIABLE
from headstart.params import RuntimeParams
from headstart.tracking import configure_mlflow, git_commit, log_dataset, log_params


class ConfiguredParametersHook:
    """Hands the run's config loader (its environment and --params included) to the pipelines that
    build one namespace per configured entry, before Kedro first asks for a pipeline."""

    @hook_impl
    def after_context_created(self, context) -> None:
        configured.use(context.config_loader, context.project_path)


class MissingInputsHook:
    """Stops a run whose stored inputs do not exist yet, before any node runs or MLflow run opens, with
    one line per missing data set naming the command that makes it (Kedro would fail mid-run instead)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        missing = [
            name
            for name in sorted(pipeline.inputs())
            if _stored_and_required(catalog.get(name)) and not catalog.exists(name)
        ]
        if missing:
            lines = [f"{name}: {_how_to_make(name, catalog)}" for name in missing]
            raise click.ClickException("this run needs data that does not exist yet:\n  " + "\n  ".join(lines))


def training_precision(runtime: RuntimeParams | dict | None) -> str:
    """bf16 or fp32: what `runtime.precision` resolves to on this machine (typed or not, as a pipeline
    left it); empty when the runtime parameters are invalid, which their own check reports."""
    try:
        runtime = runtime if isinstance(runtime, RuntimeParams) else RuntimeParams.model_validate(runtime or {})
    except ValidationError:
        return ""
    return "bf16" if trains_in_bf16(runtime.precision, resolve_device(runtime.device)) else "fp32"


def _stored_and_required(dataset) -> bool:
    stored = isinstance(dataset, AbstractVersionedDataset | PartitionedDataset)
    return stored and not getattr(dataset, "_missing_ok", False)  # e.g. catalogued_source_model


def _every_pipeline() -> dict[str, Any]:
    """Each pipeline package's pipeline (Kedro's find_pipelines would return only the run's own)."""
    import headstart.pipelines

    return {
        module.name: importlib.import_module(f"headstart.pipelines.{module.name}").create_pipeline()
        for module in pkgutil.iter_modules(headstart.pipelines.__path__)
        if module.ispkg
    }


def _how_to_make(name: str, catalog) -> str:
    makers = [(len(p.nodes), key) for key, p in _every_pipeline().items() if name in p.all_outputs()]
    if makers:
        return f"not made yet; run `kedro run --pipelines={min(makers)[1]}` (or the default `kedro run`) first"
    dataset = catalog.get(name)
    where = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None) or dataset
    return f"an input you provide, not found at {where}; see its entry in conf/base/catalog.yml"


class OneWriterHook:
    """Under `torchrun --nproc_per_node=N kedro run ...` every process runs the pipeline and trains its
    share of each batch (DistributedDataParallel); only rank 0 saves versions and logs to MLflow. The
    other ranks read their inputs and keep their outputs in memory."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        if not distributed.is_main_process():
            for name in pipeline.all_outputs():
                catalog[name] = MemoryDataset(copy_mode="assign")


class MlflowTrackingHook:
    def __init__(self) -> None:
        self._settings: dict[str, Any] = {}
        self._project_path = Path.cwd()
        self._catalog = None
        self._versions: dict[str, dict[str, str]] = {"loaded": {}, "saved": {}}

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)
        self._settings = dict(context.config_loader["mlflow"])  # {} when conf has no mlflow file

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._catalog = catalog
        self._versions = {"loaded": {}, "saved": {}}
        if not distributed.is_main_process():  # rank 0 logs for every process of a torchrun
            return
        try:
            configure_mlflow(self._settings, self._project_path)  # artifacts land beside a sqlite store, under mlruns/
        except ConnectionError as error:
            raise click.ClickException(str(error)) from error
        parent = os.environ.get(PARENT_RUN_VARIABLE)  # an orchestrated task: a child of the DAG run's run
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        tags = {
            "kedro.run_id": run_params["run_id"],
            "kedro.env": run_params.get("env") or "",
            "kedro.pipelines": ",".join(pipelines),
            "kedro.namespaces": ",".join(run_params.get("namespaces") or []),
            "git.commit": git_commit(self._project_path) or "unknown",
        }
        parameters = catalog.load("parameters")
        tags["training.precision"] = training_precision(parameters.get("runtime"))
        mlflow.start_run(run_name=f"{'+'.join(pipelines)} {run_params['run_id']}", tags=tags, parent_run_id=parent)
        log_params(parameters)

    def _record_version(self, direction: str, dataset_name: str) -> None:
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        if isinstance(dataset, AbstractVersionedDataset):
            try:
                version = dataset.resolve_load_version() if direction == "loaded" else dataset.resolve_save_version()
            except VersionNotFoundError:  # an optional input (`missing_ok`) with nothing saved yet
                return
            self._versions[direction][dataset_name] = str(version)
            mlflow.set_tag(f"kedro.{direction}.{dataset_name}", str(version))  # now: a registered model reads it

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node) -> None:
        if mlflow.active_run():
            self._record_version("loaded", dataset_name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if not mlflow.active_run():
            return
        self._record_version("saved", dataset_name)
        metadata = getattr(self._catalog.get(dataset_name), "metadata", None) or {}
        if metadata.get("mlflow"):
            log_dataset(dataset_name, data, metadata)

    def _end_run(self, status: str) -> None:
        if not mlflow.active_run():
            return
        mlflow.log_dict(self._versions, "catalog_versions.json")
        while mlflow.active_run():  # close child runs a failing node left open, then this run
            mlflow.end_run(status=status)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result, pipeline, catalog) -> None:
        self._end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline, catalog) -> None:
        if mlflow.active_run():
            mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
        self._end_run("FAILED")
