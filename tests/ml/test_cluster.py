"""The Dask pool (a LocalCluster of two processes over loopback) behind Workers' interface: results in
order, a job's error raised here, one torch thread a job, a raced grid equal to the local one's to
the digit, its events and log records here before its result, and a training whose worker dies
run again from its checkpoint."""

import logging
import os
from pathlib import Path

import pytest
import torch

from headstart.ml import progress
from headstart.ml.cluster import ClusterWorkers
from headstart.ml.training import fit
from headstart.ml.workers import Workers
from tests.ml.test_training import CONFIG
from tests.ml.test_transfer import tiny, toy_data
from tests.ml.test_workers import raced

# Not slow, though a cluster starts in 5 to 25 s on 2 busy cores: CI runs the cluster code (tests/test_cluster.py
# is the end-to-end run, in the slow tier).


@pytest.fixture(scope="module")
def pool():
    pool = ClusterWorkers(local=2)
    yield pool
    pool.close()


def _square(x: int) -> int:
    return x * x


def _fail(message: str) -> None:
    raise ValueError(message)


def _threads_and_a_record(x: int) -> int:
    logging.getLogger("headstart.tests").info("job %d on %s", x, os.getpid())
    return torch.get_num_threads()


def _fit(checkpoint: str | None = None, marker: str = "") -> tuple[dict, int]:
    """A small training; with `marker`, its worker's process ends in epoch 3 the first time, as a machine
    lost mid-training ends: without a word."""

    def die(event, label, payload):
        if marker and event == "epoch" and payload["epoch"] == 3 and not Path(marker).exists():
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)

    torch.manual_seed(0)
    model, (images, labels) = tiny(), toy_data()
    config = CONFIG.model_copy(update={"checkpoint_seconds": 0, "label": "dies once" if marker else "whole"})
    with progress.listening(die):
        fit(model, (images, labels), (images, labels), config, Path(checkpoint) if checkpoint else None)
    return model.state_dict(), os.getpid()


def test_jobs_return_in_order_one_torch_thread_each_and_their_records_come_first(pool, caplog):
    assert pool.count == 2 and pool.remote
    assert pool.map(_square, [1, 2, 3]) == [1, 4, 9] and pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    with caplog.at_level(logging.INFO, logger="headstart.tests"):
        job = pool.submit(_threads_and_a_record, 7)
        assert job.result() == 1 and job.result() == 1  # a second call, at once
        assert any(r.name == "headstart.tests" and r.getMessage().startswith("job 7 on ") for r in caplog.records)
    with pytest.raises(ValueError, match="the job's own error"):
        pool.submit(_fail, "the job's own error").result()


def test_a_second_driver_on_the_same_scheduler_hears_only_its_own_jobs(pool, caplog):
    other = ClusterWorkers(pool.client.scheduler.address)  # as `runtime.cluster: tcp://host:8786` connects
    try:
        assert other.count == 2 and other.topic != pool.topic
        with caplog.at_level(logging.INFO, logger="headstart.tests"):
            assert other.submit(_threads_and_a_record, 8).result() == 1
            assert pool.submit(_threads_and_a_record, 9).result() == 1
        heard = [r.getMessage().split(" on ")[0] for r in caplog.records if r.name == "headstart.tests"]
        assert sorted(heard) == ["job 8", "job 9"]  # each once: from its own driver's topic alone
    finally:
        other.close()
    assert pool.map(_square, [2]) == [4]  # closing a client leaves the cluster to the other


def test_a_raced_grid_on_the_cluster_equals_the_local_one_and_its_progress_comes_here(pool):
    heard = []
    with progress.listening(lambda event, label, payload: heard.append((event, label))):
        together = raced(pool, label="toy")
    alone = raced(Workers(1), label="toy")
    assert together.setting == alone.setting and together.rungs == alone.rungs
    for seed, result in alone.results.items():
        mine, theirs = result.model.state_dict(), together.results[seed].model.state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    started = {label for event, label in heard if event == "started"}
    assert "toy seed 0 0.3" in started and "toy seed 1 3.0" in started
    assert ("ended", "toy seed 1 3.0") in heard


def test_a_training_whose_worker_dies_runs_again_from_its_checkpoint_to_the_same_model(pool, tmp_path, caplog):
    marker = tmp_path / "died"
    with caplog.at_level(logging.INFO, logger="headstart"):
        resumed, pid = pool.submit(_fit, str(tmp_path / "checkpoint.pt"), str(marker)).result(timeout=300)
    assert pid != int(marker.read_text())  # another worker's process
    assert any(r.getMessage().endswith("checkpoint.pt after epoch 2") for r in caplog.records)
    whole, _ = Workers(1).submit(_fit).result()  # here, on one thread as a worker
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert pool.map(_square, [4, 5]) == [16, 25]  # the pool goes on
