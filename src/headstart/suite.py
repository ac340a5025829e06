"""`kedro suite`: the transfer comparison and the advice on each target task of `suite.tasks`, then the
suite report and its audit (`kedro run --pipelines=suite`).

Each task is one `kedro run` of `suite.pipelines` in this project and environment, with the task's
`overrides` as runtime parameters and its own folder for its versions (`<stored_data>/suite/<task>`,
the catalog's `_stored_data`), so its "latest" versions are its own and the default experiment's stay
as they were. Every task's run nests under one MLflow run for the whole suite.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.project import pipelines as project_pipelines
from kedro.framework.session import KedroSession
from pydantic import ValidationError

from headstart.orchestration import PARENT_RUN_VARIABLE, close_parent_run, open_parent_run
from headstart.params import SuiteParams
from headstart.user_errors import ParameterError, field_lines

logger = logging.getLogger(__name__)


def _loaded(project_path: Path, env: str | None, runtime_params: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """(the parameters, the globals) of `env`, read as a run reads them."""
    with KedroSession.create(project_path, env=env, runtime_params=runtime_params) as session:
        loader = session.load_context().config_loader
        return dict(loader["parameters"]), dict(loader["globals"])


def chosen_tasks(parameters: dict, chosen: list[str] | None = None) -> list[str]:
    """The tasks a suite run covers: `chosen` (from --tasks), else `suite.run`, else every task;
    an unknown one is refused, naming it, before anything runs."""
    raw = parameters.get("suite") or {}
    try:
        return SuiteParams(**{**raw, "run": chosen or raw.get("run")}).chosen()
    except ValidationError as error:
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(field_lines("suite", error))) from error


def task_runtime_params(task: str, parameters: dict, stored_data: str) -> dict[str, Any]:
    """A task's runtime parameters: its overrides, its own folder, and its name (for MLflow's tags)."""
    spec = parameters["suite"]["tasks"][task]
    return {**(spec.get("overrides") or {}), "stored_data": f"{stored_data}/suite/{task}", "suite_task": task}


def _run(project_path: Path, env: str | None, runtime_params: dict | None, pipelines: list[str]) -> None:
    """One `kedro run` in this process; the pipelines are built anew from this run's parameters (Kedro
    keeps the last run's when the names are the same, and a task's strategies or tasks may differ)."""
    project_pipelines.configure(f"{__package__}.pipeline_registry")
    with KedroSession.create(project_path, env=env, runtime_params=runtime_params) as session:
        session.run(pipeline_names=pipelines)


def run_suite(project_path: Path, env: str | None, chosen: list[str] | None = None) -> list[str]:
    """Every chosen task's run, then the suite report; returns the tasks run."""
    selection = {"suite": {"run": chosen}} if chosen else None
    parameters, globals_ = _loaded(project_path, env, selection)
    tasks = chosen_tasks(parameters, chosen)
    pipelines = list(parameters["suite"].get("pipelines") or ["ingest", "pretrain", "transfer", "advise"])
    parent = open_parent_run(project_path, env or "local", f"suite {', '.join(tasks)}", orchestrator="kedro suite")
    previous = os.environ.get(PARENT_RUN_VARIABLE)
    os.environ[PARENT_RUN_VARIABLE] = parent
    try:
        for number, task in enumerate(tasks, 1):
            logger.info("Suite task %d of %d: %s (%s)", number, len(tasks), task, " → ".join(pipelines))
            _run(project_path, env, task_runtime_params(task, parameters, globals_["stored_data"]), pipelines)
        _run(project_path, env, selection, ["suite"])
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_VARIABLE, None)
        else:
            os.environ[PARENT_RUN_VARIABLE] = previous
        close_parent_run(project_path, env or "local", parent)
    return tasks
