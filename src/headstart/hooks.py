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

import contextlib
import importlib
import os
import pkgutil
import signal
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
from headstart.ml import distributed, progress
from headstart.ml.training import resolve_device, trains_in_bf16
from headstart.orchestration import PARENT_RUN_VARIABLE
from headstart.params import RuntimeParams
from headstart.tracking import (
    LiveRuns,
    configure_mlflow,
    end_runs_of_dead_processes,
    git_commit,
    log_dataset,
    log_params,
    process_tags,
)


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
            pipelines = _every_pipeline()
            lines = [f"{name}: {_how_to_make(name, catalog, pipelines)}" for name in missing]
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


def _how_to_make(name: str, catalog, pipelines: dict[str, Any]) -> str:
    makers = [(len(p.nodes), key) for key, p in pipelines.items() if name in p.all_outputs()]
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


class GridProgressHook:
    """With runtime.progress, one console line for a whole grid of trainings (headstart.ml.progress)."""

    def __init__(self) -> None:
        self._bar: progress.GridProgress | None = None
        self._listening = contextlib.ExitStack()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        runtime = catalog.load("parameters").get("runtime") or {}
        shown = runtime.get("progress", True) if isinstance(runtime, dict) else runtime.progress
        if shown and distributed.is_main_process():
            self._bar = progress.GridProgress()
            self._listening.enter_context(progress.listening(self._bar))

    def _close(self) -> None:
        self._listening.close()
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result, pipeline, catalog) -> None:
        self._close()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline, catalog) -> None:
        self._close()


class MlflowTrackingHook:
    def __init__(self) -> None:
        self._settings: dict[str, Any] = {}
        self._project_path = Path.cwd()
        self._catalog = None
        self._versions: dict[str, dict[str, str]] = {"loaded": {}, "saved": {}}
        self._live: LiveRuns | None = None
        self._listening = contextlib.ExitStack()
        self._signal_handlers: dict[int, Any] = {}

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
            experiment = configure_mlflow(self._settings, self._project_path)  # artifacts beside a sqlite store
        except ConnectionError as error:
            raise click.ClickException(str(error)) from error
        end_runs_of_dead_processes(experiment.experiment_id)  # e.g. a run killed with SIGKILL: KILLED, not RUNNING
        parent = os.environ.get(PARENT_RUN_VARIABLE)  # an orchestrated task: a child of the DAG run's run
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        tags = {
            "kedro.run_id": run_params["run_id"],
            "kedro.env": run_params.get("env") or "",
            "kedro.pipelines": ",".join(pipelines),
            "kedro.namespaces": ",".join(run_params.get("namespaces") or []),
            "git.commit": git_commit(self._project_path) or "unknown",
            **process_tags(),
        }
        parameters = catalog.load("parameters")
        tags["training.precision"] = training_precision(parameters.get("runtime"))
        task = parameters.get("suite_task")  # a task of `kedro suite`
        tags |= {"suite.task": task} if task else {}
        run = mlflow.start_run(
            run_name=f"{f'{task}: ' if task else ''}{'+'.join(pipelines)} {run_params['run_id']}",
            tags=tags,
            parent_run_id=parent,
        )
        log_params(parameters)
        self._live = LiveRuns(run.info.run_id)
        self._listening.enter_context(progress.listening(self._live))
        self._end_on_signals()

    def _end_on_signals(self) -> None:
        """SIGTERM (Airflow stopping a task) or Ctrl-C: this run and its trainings end KILLED, then the
        signal does what it did before."""

        def killed(signum, frame):
            self._end_run("KILLED")
            signal.signal(signum, self._signal_handlers.get(signum, signal.SIG_DFL))
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: the orchestrator handles signals
                self._signal_handlers[signum] = signal.signal(signum, killed)

    def _restore_signals(self) -> None:
        for signum, handler in self._signal_handlers.items():
            signal.signal(signum, handler)
        self._signal_handlers.clear()

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

    def _stored_file(self, dataset_name: str, model_name: str, direction: str) -> dict[str, str]:
        """Where the catalog stores one model of a versioned model entry, in the version this run
        saved or loaded: the reference an MLflow run keeps instead of a second copy of the weights."""
        dataset = self._catalog.get(dataset_name)
        version = self._versions[direction][dataset_name]
        path = f"{dataset._get_versioned_path(version)}/{model_name}.safetensors"
        protocol = getattr(dataset, "_protocol", "file")
        if protocol == "file":
            path = str(self._project_path / path) if not Path(path).is_absolute() else path
        else:
            path = f"{protocol}://{path}"
        return {"model.dataset": dataset_name, "model.version": version, "model.file": path}

    def _refer_to_stored_model(self, record: dict[str, Any]) -> dict[str, Any]:
        """A child run's record with its `model` ({dataset, name} or None) turned into reference tags."""
        record = dict(record)
        run_id, streamed = self._live.take(record.pop("training_label", None)) if self._live else (None, False)
        if run_id:  # the training's live run: its curves are there already
            record["run_id"] = run_id
            record["history"] = () if streamed else record.get("history", ())
        elif self._live is not None and "model" in record and "strategy" in (record.get("tags") or {}):
            # a training of the comparison that logged nothing live (a classical reference)
            record["run_id"] = self._live.training_run(record["tags"]["strategy"], record["run_name"])
        if "model" not in record:  # a run of a study: nothing stored
            return record
        model = record.pop("model")
        reference = self._stored_file(model["dataset"], model["name"], "saved") if model else {"model.stored": "false"}
        record["tags"] = {**(record.get("tags") or {}), **reference}
        return record

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if mlflow.active_run() and isinstance(data, dict) and "stored_in" in data:  # a run's model refers to its file
            data["weights_file"] = self._stored_file(*data["stored_in"], "loaded")["model.file"]

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if not mlflow.active_run():
            return
        self._record_version("saved", dataset_name)
        metadata = getattr(self._catalog.get(dataset_name), "metadata", None) or {}
        if metadata.get("mlflow") == "child_runs":
            data = [self._refer_to_stored_model(record) for record in data]
            if self._live is not None and "." in dataset_name:  # the strategy's candidates its tuning dropped
                self._live.mark_dropped(dataset_name.rsplit(".", 1)[0])
        if metadata.get("mlflow"):
            log_dataset(dataset_name, data, metadata)
        if metadata.get("strategy_runs") == "summary" and self._live is not None:  # one run per strategy
            self._live.summarise(data)

    def _end_run(self, status: str) -> None:
        self._listening.close()
        self._restore_signals()
        if self._live is not None:
            self._live.end_open(status)
            self._live = None
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
