"""Every core of one machine: a grid's trainings in worker processes, one torch thread each.

Small trainings scale poorly across threads; processes of one thread each do better on a CPU
(PyTorch's advice for CPU workers; on this project's 2-core EPYC 1.8–2.5× against 1.4–1.6× for two
threads: ../shared/DESIGN.md section 4). Workers start by forkserver, not fork: a process that has
loaded torch (and its thread pools) must not be forked. Each worker's log records and each labelled
training's progress events (headstart.ml.progress) are handed to this process, so the MLflow hook logs
every training's child run live as if it ran here; the library still never imports a tracker.

Kedro's ParallelRunner was not used: it runs nodes, not trainings, runs no node hooks in its workers
(our MLflow tracking is a hook) and forks by default. One pool serves a whole `kedro run`.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import torch

from headstart.ml import progress

logger = logging.getLogger(__name__)


def resolve_workers(workers: int | str, device: str) -> int:
    """`auto`: one process per CPU core on the CPU (small trainings leave cores idle in one process),
    one process on an accelerator."""
    if workers != "auto":
        return int(workers)
    from headstart.ml.training import resolve_device

    return 1 if resolve_device(device).type != "cpu" else os.cpu_count() or 1


class _Synchronous:
    """A SimpleQueue as logging's QueueHandler wants it. A SimpleQueue writes to its pipe before `put`
    returns (a Queue hands it to a feeder thread), so a training's events precede its result."""

    def __init__(self, messages) -> None:
        self.messages = messages

    def put_nowait(self, message) -> None:
        self.messages.put(message)


def _start_worker(messages) -> None:
    torch.set_num_threads(1)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(_Synchronous(messages))]  # a new process has no log set-up
    root.setLevel(logging.INFO)
    progress.forward_to(lambda event, label, payload: messages.put(("progress", event, label, payload)))


class _Relay(threading.Thread):
    """Hands the workers' log records and progress events to this process's loggers and listeners."""

    def __init__(self, messages) -> None:
        super().__init__(daemon=True, name="headstart-workers-relay")
        self.messages = messages
        self.settled = threading.Event()

    def run(self) -> None:
        while True:
            try:
                message = self.messages.get()
            except (EOFError, OSError):
                return
            if message is None:
                return
            if message == "settle":
                self.settled.set()
            elif isinstance(message, tuple) and message[0] == "progress":
                progress.report(*message[1:])
            else:
                logging.getLogger(message.name).handle(message)


class Workers:
    """`count` processes of one torch thread each; `count` 1 runs every job in this process, on one thread."""

    remote = False  # a cluster's workers (headstart.ml.cluster) are never this process, whatever their count
    scratch: str | None = None  # a folder every worker sees, for what one job leaves to the next; None: any

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._pool: ProcessPoolExecutor | None = None
        self._relay: _Relay | None = None
        self._messages = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            self._messages = context.SimpleQueue()
            self._relay = _Relay(self._messages)
            self._relay.start()
            self._pool = ProcessPoolExecutor(
                self.count, mp_context=context, initializer=_start_worker, initargs=(self._messages,)
            )
        return self._pool

    def submit(self, function: Callable, *args) -> Future:
        if self.count == 1:  # here, on one thread as a worker would: the same results to the digit
            future: Future = Future()
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                future.set_result(function(*args))
            except BaseException as error:  # as a pool's future holds it
                future.set_exception(error)
            finally:
                torch.set_num_threads(threads)
            return future
        return self._started().submit(function, *args)

    def map(self, function: Callable, items: Iterable) -> list:
        """`function(item)` for every item, in order; every job runs even when one fails, then the
        first failure is raised."""
        futures = [self.submit(function, item) for item in items]
        return [future.result() for future in futures]

    def starmap(self, function: Callable, items: Sequence[tuple]) -> list:
        futures = [self.submit(function, *item) for item in items]
        return [future.result() for future in futures]

    def settle(self) -> None:
        """Wait until every event and record of the jobs that have returned is handed over (the MLflow
        hook matches a training's final record to its live run by the run's label)."""
        if self._relay is not None:
            self._relay.settled.clear()
            self._messages.put("settle")
            self._relay.settled.wait(timeout=60)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._relay is not None:
            self._messages.put(None)
            self._relay.join(timeout=5)
            self._relay = None


_shared: dict[int, Workers] = {}


def shared(count: int) -> Workers:
    """The run's pool of `count` workers, started once and reused by every node (a start costs seconds)."""
    for size in [size for size in _shared if size != count]:
        _shared.pop(size).close()
    if count not in _shared:
        _shared[count] = Workers(count)
    return _shared[count]


def for_runtime(runtime) -> Workers:
    """The run's pool, as `runtime` says: the Dask cluster of `runtime.cluster` when set, else
    `runtime.workers` processes on this machine. Every call site takes its pool from here."""
    return pool(resolve_workers(runtime.workers, runtime.device), runtime.cluster, runtime.checkpoint_dir)


def pool(count: int, cluster=None, checkpoint_dir=None) -> Workers:
    """`count` local processes, or the cluster's workers (`cluster`: a scheduler's address or
    `{local: N}`; distributed is loaded only then), whose race scratch lies under `checkpoint_dir`."""
    if cluster is None:
        return shared(count)
    from headstart.ml import cluster as clusters

    return clusters.shared(cluster, checkpoint_dir)


@atexit.register
def close_shared() -> None:
    for workers in _shared.values():
        workers.close()
    _shared.clear()
