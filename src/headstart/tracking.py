"""MLflow logging helpers: flattened params, metrics, artifacts and child runs of the active run,
each training's live run, and the tracking URI and experiment from conf. Called by the hooks, never
by nodes."""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunTag
from pydantic import BaseModel

MLFLOW_KEY = re.compile(r"[^\w\-. /]")
MAX_PARAM_LENGTH = 6000
STRATEGY_LABEL = re.compile(r"^(\S+) seed \d+")  # a comparison's training: "<strategy> seed <s> (<setting>)"


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
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        database = project_path / uri[len(prefix) :]
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
    run_id: str | None = None,
) -> str:
    """One nested run under the active run: params, per-epoch metrics (step = epoch), final metrics,
    artifacts. With `run_id`, into that run (a training's live run, its curves already logged)."""
    with mlflow.start_run(run_id=run_id, run_name=run_name, nested=True, tags=tags) as run:  # renames a live run
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


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds when a tracking server cannot be reached (MLflow's own client retries for
    minutes): a run whose record would be lost is not worth its training time."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        raise ConnectionError(
            f"the MLflow tracking server at {uri} cannot be reached ({error}); start it, or unset "
            "MLFLOW_TRACKING_URI to track in mlruns/ (conf/base/mlflow.yml)"
        ) from error


def configure_mlflow(settings: dict[str, Any], project_path: Path):
    """Tracking URI and experiment, from conf's mlflow settings; MLFLOW_* environment variables win."""
    uri = resolve_tracking_uri(settings, project_path)
    check_tracking_server(uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.set_experiment(
        os.environ.get("MLFLOW_EXPERIMENT_NAME") or settings.get("experiment_name", "headstart")
    )


class LiveRuns:
    """Each labelled training's child run, opened when the training starts and logged as it goes
    (its configuration, then each epoch's metrics), so a crash keeps every finished training's record
    and the UI shows a long node's progress (headstart.ml.progress). Tagged with this host and process,
    so a later run can tell a run left RUNNING by a killed process."""

    def __init__(self, parent_run_id: str) -> None:
        self.client = mlflow.MlflowClient()
        self.parent = self.client.get_run(parent_run_id)
        self.runs: dict[str, str] = {}  # label → run id
        self.streamed: set[str] = set()  # labels whose epochs were logged live
        self.open: set[str] = set()
        self.strategies: dict[str, str] = {}  # a comparison's strategy → its run, its trainings' parent

    def strategy_run(self, strategy: str) -> str:
        """The run of one strategy of a comparison, under the pipeline's run: its trainings nest below it
        and the comparison's summary of it lands on it (`summarise`), so the UI compares strategies."""
        if strategy not in self.strategies:
            tags = {
                "mlflow.parentRunId": self.parent.info.run_id,
                "headstart.level": "strategy",
                "strategy": strategy,
                **process_tags(),
            }
            run = self.client.create_run(self.parent.info.experiment_id, run_name=strategy, tags=tags)
            self.strategies[strategy] = run.info.run_id
        return self.strategies[strategy]

    def training_run(self, strategy: str, run_name: str) -> str:
        """A run for a training of `strategy` that logged nothing live (a classical reference)."""
        tags = {"mlflow.parentRunId": self.strategy_run(strategy), "headstart.level": "training", **process_tags()}
        return self.client.create_run(self.parent.info.experiment_id, run_name=run_name, tags=tags).info.run_id

    def summarise(self, comparison) -> None:
        """Each strategy's row of the comparison (a pandas table) on its run: the numbers as metrics, the
        verdict and the words as tags; the run then ends FINISHED."""
        for row in comparison.to_dict("records"):
            run_id = self.strategy_run(str(row["strategy"]))
            numbers = {k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            words = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in row.items() if k not in numbers and k != "strategy"}
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_id,
                metrics=[Metric(MLFLOW_KEY.sub("_", k), v, now, 0) for k, v in numbers.items() if not math.isnan(v)],
                tags=[RunTag(MLFLOW_KEY.sub("_", k), v) for k, v in words.items()],
            )
            self.client.set_terminated(run_id, "FINISHED")

    def __call__(self, event: str, label: str, payload: dict[str, Any]) -> None:
        if event == "started":
            if label not in self.runs:
                strategy = STRATEGY_LABEL.match(label)
                parent = self.strategy_run(strategy.group(1)) if strategy else self.parent.info.run_id
                tags = {"mlflow.parentRunId": parent, "training.label": label, **process_tags()}
                if strategy:
                    tags |= {"headstart.level": "training", "strategy": strategy.group(1)}
                run = self.client.create_run(self.parent.info.experiment_id, run_name=label, tags=tags)
                self.runs[label] = run.info.run_id
                config = {
                    f"fit.{k}": v for k, v in flatten(payload["config"]).items() if k not in ("label", "progress")
                }
                self.client.log_batch(
                    run.info.run_id,
                    params=[Param(MLFLOW_KEY.sub("_", k), str(v)[:MAX_PARAM_LENGTH]) for k, v in config.items()],
                )
            else:  # a second phase (probe then fine-tune) or a resumed training
                self.client.update_run(self.runs[label], status="RUNNING")
            self.open.add(label)
        elif event == "epoch" and label in self.runs:
            step, now = int(payload.get("epoch", 0)), int(time.time() * 1000)
            metrics = [Metric(MLFLOW_KEY.sub("_", k), float(v), now, step) for k, v in payload.items() if k != "epoch"]
            self.client.log_batch(self.runs[label], metrics=metrics)
            self.streamed.add(label)
        elif event == "ended" and label in self.runs:
            self.client.set_terminated(self.runs[label], "FINISHED")
            self.open.discard(label)

    def take(self, label: str | None) -> tuple[str | None, bool]:
        """(run id, curves already logged) of a training's live run, handed to its final record once."""
        if not label or label not in self.runs:
            return None, False
        return self.runs.pop(label), label in self.streamed

    def mark_dropped(self, strategy: str) -> None:
        """The live runs of `strategy` no final record took: candidates of its grid that tuning dropped."""
        for label in [label for label in self.runs if label.startswith(f"{strategy} ")]:
            self.client.set_tag(self.runs.pop(label), "tuning.kept", "false")

    def end_open(self, status: str) -> None:
        """A failed or killed pipeline: the trainings still running end with it, and every strategy's run
        the comparison did not summarise."""
        for label in sorted(self.open):
            self.client.set_terminated(self.runs[label], status)
        self.open.clear()
        for run_id in self.strategies.values():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status)


def process_tags() -> dict[str, str]:
    return {"headstart.host": socket.gethostname(), "headstart.pid": str(os.getpid())}


def end_runs_of_dead_processes(experiment_id: str) -> list[str]:
    """Runs this host left RUNNING from a process that no longer exists (killed with SIGKILL, or the
    machine's power): marked KILLED, so no run of a dead process reads as still running."""
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    found = client.search_runs(
        [experiment_id], f"attributes.status = 'RUNNING' and tags.`headstart.host` = '{host}'", max_results=1000
    )
    ended = []
    for run in found:
        pid = int(run.data.tags.get("headstart.pid", "0"))
        if pid and not _alive(pid):
            client.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    return ended


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
