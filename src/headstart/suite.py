"""`kedro suite`: the transfer comparison and the advice on each target task of `suite.tasks`, then the
suite report and its audit (`kedro run --pipelines=suite`).

Each task is one `kedro run` of `suite.pipelines` in this project and environment, with the task's
`overrides` as runtime parameters and its own folder for its versions (`<stored_data>/suite/<task>`,
the catalog's `_stored_data`), so its "latest" versions are its own and the default experiment's stay
as they were. `suite.concurrent_tasks` of them run at once, their trainings on one shared pool
(headstart.suite_grid); every task's run nests under one MLflow run for the whole suite.

A task that finished before with the same parameters is not trained again: when its run ends, a file in
its folder (`suite_task.json`) keeps the fingerprint of the parameters its pipelines read; the next
suite skips the task while its fingerprint is the same (`suite.rerun` or `--rerun` trains it anyway).
Where the trainings ran (`runtime.cluster`, `runtime.workers`) and the progress bars are left out of
the fingerprint: the results do not depend on them. A task that failed or was killed has no such
file, so it runs again, resuming from its checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from kedro.framework.project import pipelines as project_pipelines
from kedro.framework.session import KedroSession
from pydantic import ValidationError

from headstart.ml.fingerprints import fingerprint
from headstart.orchestration import PARENT_RUN_VARIABLE, close_parent_run, open_parent_run
from headstart.params import RuntimeParams, SuiteParams
from headstart.suite_grid import TaskProcesses, run_pipelines, run_tasks, shared_cluster
from headstart.user_errors import ParameterError, field_lines

logger = logging.getLogger(__name__)

FINISHED_FILE = "suite_task.json"
SOURCES = "_sources"  # <stored_data>/suite/_sources/<key>: the source models tasks share (source_folder)
# Where and how visibly the trainings run: no part of a task's results, so no part of its fingerprint
NOT_FINGERPRINTED = {"runtime": ("cluster", "workers", "progress")}


class SuiteTasksFailed(click.ClickException):
    """Tasks whose run failed: named after the report of those that finished, and the exit is non-zero."""


def _loaded(project_path: Path, env: str | None, runtime_params: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """(the parameters, the globals) of `env`, read as a run reads them."""
    with KedroSession.create(project_path, env=env, runtime_params=runtime_params) as session:
        loader = session.load_context().config_loader
        return dict(loader["parameters"]), dict(loader["globals"])


def read_keys(project_path: Path, env: str | None, runtime_params: dict | None, pipelines: list[str]) -> list[str]:
    """The top-level parameters that `pipelines` read (`params:transfer...` → transfer): what a task's
    fingerprint covers, so a change to another pipeline's parameters (multitask.*) trains no task again."""
    project_pipelines.configure(f"{__package__}.pipeline_registry")
    with KedroSession.create(project_path, env=env, runtime_params=runtime_params) as session:
        session.load_context()  # hands the run's conf to the pipelines that build from it
        inputs = {name for pipeline in pipelines for name in project_pipelines[pipeline].inputs()}
    if "parameters" in inputs:  # a node that reads them all: every entry but the suite's own
        return sorted(set(_loaded(project_path, env, runtime_params)[0]) - {"suite", "suite_task"})
    return sorted({name.split(":", 1)[1].split(".")[0] for name in inputs if name.startswith("params:")})


def suite_params(parameters: dict, chosen: list[str] | None = None) -> SuiteParams:
    """`suite.*`, checked, with `chosen` (from --tasks) as its `run`: the tasks a suite covers are `chosen`,
    else `suite.run`, else every task; an unknown one is refused, naming it, before anything runs."""
    raw = parameters.get("suite") or {}
    try:
        return SuiteParams(**{**raw, "run": chosen or raw.get("run")})
    except ValidationError as error:
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(field_lines("suite", error))) from error


def merged(base: dict, override: dict) -> dict:
    """`base` with `override`'s entries, dicts merged at any depth (as Kedro merges runtime parameters)."""
    result = dict(base)
    for key, value in override.items():
        both = isinstance(result.get(key), dict) and isinstance(value, dict)
        result[key] = merged(result[key], value) if both else value
    return result


def task_runtime_params(
    task: str, parameters: dict, stored_data: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A task's runtime parameters: its overrides, then `extra` (the suite's --params, which win over
    conf as in `kedro run`), its own folder, and its name (for MLflow's tags)."""
    spec = parameters["suite"]["tasks"][task]
    params = merged(spec.get("overrides") or {}, {k: v for k, v in (extra or {}).items() if k != "suite"})
    return {**params, "stored_data": task_folder(stored_data, task), "suite_task": task}


def with_source_store(params: dict[str, Any], store: str | None) -> dict[str, Any]:
    return {**params, "source_store": store} if store else params


def task_folder(stored_data: str, task: str) -> str:
    return f"{stored_data}/suite/{task}"


def source_folder(stored_data: str, parameters: dict) -> str:
    """Where a task's source models are kept (the catalog's `_source_store`): one folder for every task
    whose source models are made alike (the source data and its split, the image, pretraining, the
    advice's candidates), so the suite pretrains each source once; the models' own fingerprints (data
    and parameters) still decide whether a stored one is reused."""
    ingest = parameters.get("ingest") or {}
    split = ingest.get("split") or {}
    made_from = {
        "ingest": {key: ingest.get(key) for key in ("image", "source")},
        "split": {key: split.get(key) for key in ("seed", "source_validation_fraction")},
        "pretrain": parameters.get("pretrain"),
        "candidates": (parameters.get("advise") or {}).get("candidates"),
    }
    return f"{stored_data}/suite/{SOURCES}/{fingerprint(made_from)[:12]}"


def task_fingerprint(parameters: dict, keys: list[str], pipelines: list[str]) -> str:
    """The fingerprint of what a task's run reads: `keys` of its resolved parameters, less where its
    trainings run (NOT_FINGERPRINTED), and the pipelines run."""
    read = {key: parameters.get(key) for key in keys}
    for key, left_out in NOT_FINGERPRINTED.items():
        if isinstance(read.get(key), dict):
            read[key] = {k: v for k, v in read[key].items() if k not in left_out}
    return fingerprint({"parameters": read, "pipelines": pipelines})


def finished_before(folder: Path, made_from: str) -> bool:
    """Whether the task in `folder` finished a run with these parameters (its file says so)."""
    try:
        return json.loads((folder / FINISHED_FILE).read_text())["fingerprint"] == made_from
    except (OSError, ValueError, KeyError):
        return False


def mark_finished(folder: Path, task: str, made_from: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"task": task, "fingerprint": made_from, "finished": finished}
    (folder / FINISHED_FILE).write_text(json.dumps(record, indent=2) + "\n")


def marking(folder_of: dict[str, Path], fingerprints: dict[str, str], run: Any):
    """`run(task)` between forgetting that the task finished and recording that it did: a run that fails
    or is killed leaves no record, so the next suite runs the task again."""

    def run_one(task: str) -> None:
        (folder_of[task] / FINISHED_FILE).unlink(missing_ok=True)
        run(task)
        mark_finished(folder_of[task], task, fingerprints[task])

    return run_one


def _to_run(tasks: list[str], folder_of: dict[str, Path], fingerprints: dict[str, str], rerun: bool) -> list[str]:
    """The tasks to train: each that has not finished with the same parameters (all with `rerun`)."""
    if rerun:
        return list(tasks)
    left = []
    for task in tasks:
        if finished_before(folder_of[task], fingerprints[task]):
            logger.info(
                "Suite task %s: finished before with the same parameters (%s); not trained again "
                "(suite.rerun=true or kedro suite --rerun trains it anew)",
                task,
                folder_of[task] / FINISHED_FILE,
            )
        else:
            left.append(task)
    return left


@dataclass
class SuitePlan:
    """What a suite run covers: its checked parameters, its tasks, each one's folder, fingerprint and
    runtime parameters, and the tasks left to train."""

    suite: SuiteParams
    parameters: dict[str, Any]
    selection: dict[str, Any]  # the runtime parameters of the suite's own session (--params, --tasks)
    stored_data: str
    extra: dict[str, Any]  # the suite's --params
    folders: dict[str, Path] = field(default_factory=dict)
    source_stores: dict[str, str] = field(default_factory=dict)  # each task's folder of source models
    fingerprints: dict[str, str] = field(default_factory=dict)
    to_run: list[str] = field(default_factory=list)

    def params_of(self, task: str) -> dict[str, Any]:
        params = task_runtime_params(task, self.parameters, self.stored_data, self.extra)
        return with_source_store(params, self.source_stores.get(task))


def plan_suite(
    project_path: Path, env: str | None, chosen: list[str] | None, extra: dict[str, Any], rerun: bool
) -> SuitePlan:
    """The suite's parameters and tasks, their folders and fingerprints, and those to train."""
    selection = merged(extra, {"suite": {"run": chosen}} if chosen else {})
    parameters, globals_ = _loaded(project_path, env, selection or None)
    suite = suite_params(parameters, chosen)
    plan = SuitePlan(suite, parameters, selection, globals_["stored_data"], extra)
    keys = read_keys(project_path, env, selection or None, suite.pipelines)
    for task in suite.chosen():
        plan.folders[task] = project_path / task_folder(plan.stored_data, task)
        resolved = _loaded(project_path, env, plan.params_of(task))[0]
        plan.fingerprints[task] = task_fingerprint(resolved, keys, suite.pipelines)
        plan.source_stores[task] = source_folder(plan.stored_data, resolved)
    plan.to_run = _to_run(suite.chosen(), plan.folders, plan.fingerprints, rerun or suite.rerun)
    return plan


def _train(project_path: Path, env: str | None, plan: SuitePlan) -> dict[str, BaseException]:
    """Every task left to train, `concurrent_tasks` at a time, their trainings on one shared cluster."""
    suite = plan.suite
    with shared_cluster(RuntimeParams.model_validate(plan.parameters.get("runtime") or {})) as address:
        # one driver's progress bars only: two would overwrite each other's lines
        shared = {"runtime": {"cluster": address, **({"progress": False} if suite.concurrent_tasks > 1 else {})}}
        processes = TaskProcesses(project_path, env, suite.pipelines, lambda task: merged(plan.params_of(task), shared))
        marked = marking(plan.folders, plan.fingerprints, processes)
        number = {task: n for n, task in enumerate(plan.to_run, 1)}

        def run_one(task: str) -> None:
            logger.info("Suite task %d of %d: %s (%s)", number[task], len(number), task, " → ".join(suite.pipelines))
            marked(task)
            logger.info("Suite task %s finished", task)

        return run_tasks(plan.to_run, min(suite.concurrent_tasks, len(plan.to_run)), run_one, processes.stop)


def run_suite(
    project_path: Path,
    env: str | None,
    chosen: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    rerun: bool = False,
) -> tuple[list[str], list[str], str]:
    """Every chosen task's run that has not finished before, then the suite report over the tasks that
    have finished; returns (the tasks reported, those trained now, the report's versioned folder).
    Tasks that failed are named (SuiteTasksFailed) after the report of the others: the report leaves
    them out rather than read a failed task's older outputs as if they were this run's."""
    project_path = Path(project_path).resolve()
    plan = plan_suite(project_path, env, chosen, extra or {}, rerun)
    tasks = plan.suite.chosen()
    parent = open_parent_run(project_path, env or "local", f"suite {', '.join(tasks)}", orchestrator="kedro suite")
    previous = os.environ.get(PARENT_RUN_VARIABLE)
    os.environ[PARENT_RUN_VARIABLE] = parent  # every task's process inherits it
    try:
        failed = _train(project_path, env, plan) if plan.to_run else {}
        reported = [task for task in tasks if task not in failed]
        if reported:
            run_pipelines(project_path, env, merged(plan.selection, {"suite": {"run": reported}}), ["suite"])
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_VARIABLE, None)
        else:
            os.environ[PARENT_RUN_VARIABLE] = previous
        close_parent_run(project_path, env or "local", parent)
    if failed:
        lines = [f"{task}: {error}" for task, error in failed.items()]
        where = f"the report covers the other {len(reported)}" if reported else "no report was written"
        raise SuiteTasksFailed(f"{len(failed)} suite task(s) failed ({where}):\n  " + "\n  ".join(lines))
    report = f"{plan.stored_data}/08_reporting/suite_report.md"
    return reported, [task for task in plan.to_run if task not in failed], report
