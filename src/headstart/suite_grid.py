"""How `kedro suite` runs its tasks as one grid: several tasks' `kedro run`s at once, every training of
every task on one shared pool of workers.

Within a task the planned looks are sequential (a look's decision waits for its seeds), so one task
alone leaves workers idle between its looks, and during its ingest, pretraining and race; tasks are
independent, so another task's trainings fill them. Each task's driver (its `kedro run`) runs in a
process of its own, spawned (Kedro's session, its pipelines and our MLflow hook are per process, and a
process that loaded torch must not be forked), and submits its trainings to the same Dask scheduler:
the address in `runtime.cluster`, or a LocalCluster this process starts for the suite. The scheduler
interleaves the tasks' trainings on its workers; each driver still plans its own looks, as it does
alone. A task's process inherits this process's environment, so its MLflow run nests under the suite's.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headstart.ml.workers import resolve_workers
from headstart.params import RuntimeParams

logger = logging.getLogger(__name__)


class TaskFailed(RuntimeError):
    """A task's `kedro run` ended with an error (its traceback is in the log above) or was killed."""


@contextmanager
def shared_cluster(runtime: RuntimeParams) -> Iterator[str]:
    """The Dask scheduler every task's run submits its trainings to: `runtime.cluster`'s address as it
    is; else a LocalCluster started here for the whole suite, of `runtime.cluster.local` processes or,
    without a cluster, of `runtime.workers` (auto: one per core), each of one torch thread as a local
    worker is. One pool, not one per task: two tasks' pools would each take every core."""
    if isinstance(runtime.cluster, str):
        yield runtime.cluster
        return
    from distributed import LocalCluster

    count = runtime.cluster.local if runtime.cluster is not None else resolve_workers(runtime.workers, runtime.device)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its workers' comings and goings: not ours to log
    cluster = LocalCluster(
        n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    logger.info("The suite's workers: a LocalCluster of %d processes at %s", count, cluster.scheduler_address)
    try:
        yield cluster.scheduler_address
    finally:
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)  # a slow worker's exit is no warning
        cluster.close()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # as Ctrl-C does: the running tasks are stopped, the cluster closed


def run_tasks(
    tasks: Sequence[str], concurrent: int, run_one: Callable[[str], None], stop: Callable[[], None] | None = None
) -> dict[str, BaseException]:
    """`run_one(task)` for every task, `concurrent` at a time, started in the order given; a task that
    fails does not stop the others. Returns the failures by task, in the tasks' order. On an interrupt
    (Ctrl-C, or SIGTERM from a scheduler such as Airflow), the tasks not started are dropped and `stop`
    ends those running, so no task's process outlives the suite."""
    failures: dict[str, BaseException] = {}
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    pool = ThreadPoolExecutor(concurrent, thread_name_prefix="suite-task")
    try:
        futures = {pool.submit(run_one, task): task for task in tasks}
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                failures[futures[future]] = error
                logger.error("Suite task %s failed: %s", futures[future], error)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        if stop is not None:
            stop()
        raise
    finally:
        pool.shutdown(wait=True)
        if main:
            signal.signal(signal.SIGTERM, previous)
    return {task: failures[task] for task in tasks if task in failures}


def run_pipelines(project_path: Path, env: str | None, runtime_params: dict | None, pipelines: list[str]) -> None:
    """One `kedro run` in this process; the pipelines are built anew from this run's parameters (Kedro
    keeps the last run's when the names are the same, and a task's strategies or tasks may differ)."""
    from kedro.framework.project import pipelines as project_pipelines
    from kedro.framework.session import KedroSession

    project_pipelines.configure("headstart.pipeline_registry")
    with KedroSession.create(project_path, env=env, runtime_params=runtime_params) as session:
        session.run(pipeline_names=pipelines)


class _Named(logging.Filter):
    """Each log line of a task's process starts with the task's name: two tasks' lines interleave."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not getattr(record, "suite_named", False):
            record.msg, record.suite_named = f"{self.task} | {record.msg}", True  # not [..]: rich markup
        return True


def _task_process(project_path: str, env: str | None, runtime_params: dict, pipelines: list[str], task: str) -> None:
    """A task's `kedro run`, in a fresh spawned process: the project bootstrapped as the CLI does."""
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path(project_path))
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Named(task))
    run_pipelines(Path(project_path), env, runtime_params, pipelines)


class TaskProcesses:
    """Runs a task's `kedro run` of `pipelines` in a spawned process and waits for it; `stop` ends those
    running (SIGTERM: our MLflow hook ends a run so stopped as KILLED)."""

    def __init__(
        self, project_path: Path, env: str | None, pipelines: list[str], params_of: Callable[[str], dict[str, Any]]
    ) -> None:
        self.project_path, self.env, self.pipelines, self.params_of = project_path, env, pipelines, params_of
        self.context = multiprocessing.get_context("spawn")
        self.running: set = set()
        self.lock = threading.Lock()

    def __call__(self, task: str) -> None:
        arguments = (str(self.project_path), self.env, self.params_of(task), self.pipelines, task)
        process = self.context.Process(target=_task_process, args=arguments, name=f"suite-{task}")
        with self.lock:
            self.running.add(process)
            process.start()
        process.join()
        with self.lock:
            self.running.discard(process)
        if process.exitcode != 0:
            how = f"killed by signal {-process.exitcode}" if process.exitcode < 0 else f"exit code {process.exitcode}"
            raise TaskFailed(f"its kedro run ended with {how}")

    def stop(self) -> None:
        with self.lock:
            for process in self.running:
                process.terminate()
            for process in self.running:
                process.join(timeout=30)
