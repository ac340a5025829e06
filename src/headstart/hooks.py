"""MLflow tracking for every `kedro run`: our own small hook (kedro-mlflow breaks on MLflow 3.13+).

One MLflow run per `kedro run`, tagged with the Kedro run id, git commit, pipelines and the
catalog versions loaded and saved, holding every parameter. A catalog entry opts into logging
with `metadata: {mlflow: metrics}` (numbers of a dict as metrics, the dict as JSON) or
`{mlflow: artifact}` (a figure, dict or text file), or `{mlflow: child_runs}`: a list of run
records (run_name, params, history, metrics) logged as child runs of the `kedro run`'s run, one
per strategy × seed, so nodes return data and never call MLflow themselves.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset
from kedro.io.core import VersionNotFoundError
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from pydantic import BaseModel

MLFLOW_KEY = re.compile(r"[^\w\-. /]")
MAX_PARAM_LENGTH = 6000


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and pydantic models → {'a.b.c': leaf}."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def numeric_leaves(value: Any) -> dict[str, float]:
    """Metric-ready numbers of a nested dict, with keys MLflow accepts."""
    return {
        MLFLOW_KEY.sub("_", key): float(leaf)
        for key, leaf in flatten(value).items()
        if isinstance(leaf, int | float) and not isinstance(leaf, bool)
    }


def git_commit(path: Path) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def resolve_tracking_uri(settings: dict[str, Any], project_path: Path) -> str:
    """MLFLOW_TRACKING_URI wins; otherwise conf's URI, a relative sqlite path taken from the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.get("tracking_uri", "sqlite:///mlruns/mlflow.db")
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        database = project_path / uri[len(prefix):]
        database.parent.mkdir(parents=True, exist_ok=True)
        uri = f"{prefix}{database}"
    return uri


def log_params(params: Any) -> None:
    """Nested parameters, flattened, with keys and lengths MLflow accepts."""
    mlflow.log_params({MLFLOW_KEY.sub("_", k): str(v)[:MAX_PARAM_LENGTH] for k, v in flatten(params).items()})


def log_artifact(data: Any, file_name: str) -> None:
    """A figure, dict, text, table or raw bytes (e.g. safetensors weights) as an artifact of the active run."""
    if isinstance(data, Figure):
        mlflow.log_figure(data, file_name)
        plt.close(data)
    elif isinstance(data, dict):
        mlflow.log_dict(data, file_name)
    elif isinstance(data, str):
        mlflow.log_text(data, file_name)
    elif isinstance(data, bytes):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(file_name).name
            path.write_bytes(data)
            mlflow.log_artifact(str(path), str(Path(file_name).parent) if Path(file_name).parent != Path(".") else None)
    elif hasattr(data, "to_csv"):
        mlflow.log_text(data.to_csv(index=False), file_name)


DEFAULT_SUFFIXES = ((Figure, ".png"), (dict, ".json"), (str, ".txt"), (bytes, ".bin"))


def log_child_run(
    run_name: str,
    params: dict[str, Any],
    history: Sequence[dict[str, float]] = (),
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    artifacts: dict[str, Any] | None = None,
) -> str:
    """One nested run under the active run: params, per-epoch metrics (step = epoch), final metrics, artifacts."""
    with mlflow.start_run(run_name=run_name, nested=True, tags=tags) as run:
        log_params(params)
        for record in history:
            step = int(record.get("epoch", 0))
            mlflow.log_metrics({k: float(v) for k, v in record.items() if k != "epoch"}, step=step)
        if metrics:
            mlflow.log_metrics(numeric_leaves(metrics))
        for file_name, data in (artifacts or {}).items():
            log_artifact(data, file_name)
    return run.info.run_id


def log_dataset(name: str, data: Any, metadata: dict[str, Any]) -> None:
    """Log one saved data set as its catalog metadata asks (`artifact_file` names the artifact)."""
    mode = metadata["mlflow"]
    if mode == "child_runs":
        for record in data:
            log_child_run(**record)
        return
    if mode == "metrics":
        mlflow.log_metrics({f"{name}.{key}": number for key, number in numeric_leaves(data).items()})
    suffix = next((s for kind, s in DEFAULT_SUFFIXES if isinstance(data, kind)), ".csv")
    log_artifact(data, metadata.get("artifact_file", f"{name}{suffix}"))


PARENT_RUN_VARIABLE = "HEADSTART_MLFLOW_PARENT_RUN_ID"  # set by an orchestrator (our Airflow DAGs)


def configure_mlflow(settings: dict[str, Any], project_path: Path):
    """Tracking URI and experiment, from conf's mlflow settings; MLFLOW_* environment variables win."""
    mlflow.set_tracking_uri(resolve_tracking_uri(settings, project_path))
    return mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or settings.get("experiment_name", "headstart"))


def _project_mlflow_settings(project_path: Path, env: str) -> dict[str, Any]:
    from kedro.config import MissingConfigException, OmegaConfigLoader

    loader = OmegaConfigLoader(
        str(project_path / "conf"), env=env, base_env="base", default_run_env="local",
        config_patterns={"mlflow": ["mlflow*"]},
    )
    try:
        return dict(loader["mlflow"])
    except MissingConfigException:
        return {}


def open_parent_run(project_path: Path, env: str, run_name: str) -> str:
    """An MLflow run that the `kedro run` of each Airflow task nests under (one per DAG run)."""
    experiment = configure_mlflow(_project_mlflow_settings(Path(project_path), env), Path(project_path))
    run = mlflow.MlflowClient().create_run(  # left RUNNING: close_parent_run ends it
        experiment.experiment_id, run_name=run_name, tags={"orchestrator": "airflow", "kedro.env": env}
    )
    return run.info.run_id


def close_parent_run(project_path: Path, env: str, run_id: str) -> None:
    """FAILED when a child run failed, else FINISHED."""
    configure_mlflow(_project_mlflow_settings(Path(project_path), env), Path(project_path))
    client = mlflow.MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    failed = any(child.info.status == "FAILED" for child in children)
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


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
        configure_mlflow(self._settings, self._project_path)  # artifacts land beside a sqlite store, under mlruns/
        parent = os.environ.get(PARENT_RUN_VARIABLE)
        if parent:  # an orchestrated task: nest this run under the DAG run's
            mlflow.start_run(run_id=parent)
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        tags = {
            "kedro.run_id": run_params["run_id"],
            "kedro.env": run_params.get("env") or "",
            "kedro.pipelines": ",".join(pipelines),
            "kedro.namespaces": ",".join(run_params.get("namespaces") or []),
            "git.commit": git_commit(self._project_path) or "unknown",
        }
        mlflow.start_run(run_name=f"{'+'.join(pipelines)} {run_params['run_id']}", tags=tags, nested=bool(parent))
        log_params(catalog.load("parameters"))

    def _record_version(self, direction: str, dataset_name: str) -> None:
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        if isinstance(dataset, AbstractVersionedDataset):
            try:
                version = dataset.resolve_load_version() if direction == "loaded" else dataset.resolve_save_version()
            except VersionNotFoundError:  # an optional input (`missing_ok`) with nothing saved yet
                return
            self._versions[direction][dataset_name] = str(version)

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
        mlflow.set_tags(
            {f"kedro.{direction}.{name}": version for direction, versions in self._versions.items() for name, version in versions.items()}
        )
        mlflow.log_dict(self._versions, "catalog_versions.json")
        while mlflow.active_run():  # close child runs a failing node left open, then the parent
            run_id = mlflow.active_run().info.run_id
            mlflow.end_run(status=status)
            if run_id == os.environ.get(PARENT_RUN_VARIABLE):
                mlflow.MlflowClient().update_run(run_id, status="RUNNING")  # the DAG run's: still open

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result, pipeline, catalog) -> None:
        self._end_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline, catalog) -> None:
        if mlflow.active_run():
            mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
        self._end_run("FAILED")
