"""Beyond one machine: a grid's trainings on a Dask distributed cluster, behind Workers' interface.

`runtime.cluster` names a running scheduler (`tcp://host:8786`, its workers started with
`dask worker ... --nthreads 1`) or `{local: N}`: a LocalCluster of N processes of one thread each on
this machine, over loopback. The call sites do not change: `headstart.ml.workers.for_runtime` hands
them this pool or the local one. Each job runs on one torch thread, as a local worker does, so its
results equal the local workers' to the digit; it hands its log records and its trainings' progress
events to this process through distributed's own events (Worker.log_event → Client.subscribe_topic),
so the MLflow hook logs every training's child run live as it does for local workers. A job whose
worker dies is run again on another (the scheduler allows `distributed.scheduler.allowed-failures`
deaths, 3 by default) and resumes from its last checkpoint when runtime.checkpoint_dir is on a file
system every worker shares; a job that raises is not retried: its training is seeded and would fail
again the same way. distributed is imported here only, so a run without a cluster never loads it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from distributed import Client, KilledWorker, LocalCluster, get_worker
from distributed.client import Future as DaskFuture

from headstart.ml import progress
from headstart.ml.workers import Workers

logger = logging.getLogger(__name__)

# The cluster's own loggers stay on the worker (dask logs there, and a record about sending an event
# must not become an event)
CLUSTER_LOGGERS = ("distributed", "tornado", "asyncio", "bokeh")
CONNECT_SECONDS = 60  # for a scheduler to answer and a first worker to join
EVENTS_SECONDS = 60  # for a returned job's events to arrive after its result


def _plain(value: Any) -> Any:
    """A payload in JSON's types, which msgpack (the events' wire format) carries."""
    return json.loads(json.dumps(value, default=str))


class _Forward(logging.Handler):
    """A job's log records, as events of its driver's topic; only those of the job's own thread, so
    that two jobs sharing a worker process (a worker of several threads) send only their own."""

    def __init__(self, worker, topic: str) -> None:
        super().__init__()
        self.worker, self.topic, self.thread = worker, topic, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or record.name.split(".")[0] in CLUSTER_LOGGERS:
            return
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        fields = {k: v for k, v in vars(record).items() if isinstance(v, str | int | float | bool | type(None))}
        self.worker.log_event(self.topic, ["log", {**fields, "msg": message, "args": None, "exc_text": None}])


@contextmanager
def _forwarded(topic: str) -> Iterator[None]:
    worker, thread = get_worker(), threading.get_ident()
    handler, root = _Forward(worker, topic), logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # as a local worker's: the driver's handlers choose what they show

    def forward(event: str, label: str, payload: dict) -> None:
        if threading.get_ident() == thread:
            worker.log_event(topic, ["progress", event, label, _plain(payload)])

    try:
        with progress.listening(forward):
            yield
    finally:
        root.removeHandler(handler)


def _job(topic: str, key: str, function: Callable, *args) -> Any:
    """`function(*args)` on a cluster worker, on one torch thread; then a mark after its events, which
    the driver waits for before it hands the result over (events precede results, as locally)."""
    torch.set_num_threads(1)
    try:
        with _forwarded(topic):
            return function(*args)
    finally:
        get_worker().log_event(topic, ["returned", key])


class _Relay(threading.Thread):
    """Hands the cluster's events to this process's loggers and progress listeners, in arrival order,
    off the client's event loop (a listener logs to MLflow: network calls)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="headstart-cluster-relay")
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.returned: set[str] = set()
        self.changed = threading.Condition()

    def run(self) -> None:
        while (event := self.events.get()) is not None:
            message = event[1]  # (the scheduler's time, the message)
            try:
                if message[0] == "log":
                    record = logging.makeLogRecord(message[1])
                    logging.getLogger(record.name).handle(record)
                elif message[0] == "progress":
                    progress.report(*message[1:])
                elif message[0] == "returned":
                    with self.changed:
                        self.returned.add(message[1])
                        self.changed.notify_all()
            except Exception:  # a listener's fault must not stop the relay of every later event
                logger.exception("A cluster event could not be handed over: %s", message[:2])

    def wait_for(self, key: str) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.returned, timeout=EVENTS_SECONDS):
                logger.warning("The events of job %s did not arrive within %d s", key, EVENTS_SECONDS)
            self.returned.discard(key)


class ClusterJob:
    """A submitted job: `result()` as a concurrent future's, after every event the job sent."""

    def __init__(self, future: DaskFuture, relay: _Relay) -> None:
        self.future, self.relay, self.heard = future, relay, False

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self.future.result(timeout)
        finally:
            if not self.heard and self.future.status in ("finished", "error") and not self._lost():
                self.relay.wait_for(self.future.key)
                self.heard = True  # a second call returns at once

    def _lost(self) -> bool:
        """Its workers died more often than the scheduler allows: no events to wait for."""
        return self.future.status == "error" and isinstance(self.future.exception(), KilledWorker)


class ClusterWorkers(Workers):
    """Workers on a Dask cluster: a scheduler's address, or `local` processes on this machine. `count`
    is the cluster's worker threads when it connects (what the budget plans with); `scratch`, a folder
    every worker sees, for what one job leaves to the next (a race's paused candidates)."""

    remote = True

    def __init__(self, address: str | None = None, local: int | None = None, scratch: str | None = None) -> None:
        self._cluster = None
        logging.getLogger("distributed").setLevel(logging.WARNING)  # its workers' comings and goings: not ours to log
        if local is not None:
            self._cluster = LocalCluster(
                n_workers=local, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            )
        try:
            self.client = Client(self._cluster or address, timeout=CONNECT_SECONDS)
            self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            self.close()
            where = address or f"{{local: {local}}}"
            raise RuntimeError(f"runtime.cluster: no Dask scheduler with workers at {where} ({error})") from error
        self.count = max(1, sum(self.client.nthreads().values()))
        self.scratch = scratch
        self.topic = f"headstart-{self.client.id}"  # this driver's own: a scheduler may serve several
        self._relay = _Relay()
        self._relay.start()
        self.client.subscribe_topic(self.topic, self._relay.events.put)
        logger.info("Cluster at %s: %d worker threads", self.client.scheduler.address, self.count)

    def submit(self, function: Callable, *args) -> ClusterJob:
        key = f"{getattr(function, '__name__', 'job')}-{uuid.uuid4().hex}"
        future = self.client.submit(_job, self.topic, key, function, *args, key=key, pure=False, retries=0)
        return ClusterJob(future, self._relay)

    def settle(self) -> None:
        """Nothing left to wait for: every job's result was handed over after its events."""

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None
        if self._cluster is not None:
            # a worker importing what a training needs takes more than the 4 s a nanny waits to exit; it
            # is killed then, its work done: not a warning
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            self._cluster.close()
            self._cluster = None
        if getattr(self, "_relay", None) is not None:
            self._relay.events.put(None)
            self._relay.join(timeout=5)
            self._relay = None


_shared: dict[str, ClusterWorkers] = {}


def shared(cluster: str | Any, scratch: str | os.PathLike | None = None) -> ClusterWorkers:
    """The run's pool on `cluster` (an address, or an object or mapping with `local`), connected once
    and reused by every node; its race scratch under `scratch` (runtime.checkpoint_dir)."""
    local = cluster.get("local") if isinstance(cluster, dict) else getattr(cluster, "local", None)
    name = f"local:{local}" if local is not None else str(cluster)
    if name not in _shared:
        folder = str(Path(scratch) / "race") if scratch is not None else None
        _shared[name] = ClusterWorkers(None if local is not None else str(cluster), local, folder)
    return _shared[name]


@atexit.register
def close_shared() -> None:
    for pool in _shared.values():
        pool.close()
    _shared.clear()
