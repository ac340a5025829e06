"""Worker processes: a raced grid trained in two processes of one thread each equals the same grid
trained in this process, to the digit; their trainings' progress reaches this process's listeners."""

from types import SimpleNamespace

import torch

from headstart.ml import progress
from headstart.ml.strategies import StrategyConfig, TargetTask, train_tuned
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from headstart.ml.workers import Workers, for_runtime, resolve_workers
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import toy_data


def raced(workers: Workers, label: str = ""):
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG, source_state(), 3, (images[:36], labels[:36]), (images[36:], labels[36:]))
    training = TrainConfig(
        epochs=4, batch_size=8, progress=False, device="cpu", checkpoint_seconds=1e9, label=label,
        augment={"max_rotation_deg": 10.0, "max_shift": 0.1},
    )  # fmt: skip
    grid = [{"lr_scale": 0.3}, {"lr_scale": 1.0}, {"lr_scale": 3.0}]

    def configure(setting, seed):
        config = training.model_copy(update={"seed": seed, "body_lr": 3e-3 * setting["lr_scale"]})
        if label:
            config = config.model_copy(update={"label": f"{label} seed {seed} {setting['lr_scale']}"})
        return StrategyConfig(procedure="fit", spec=TransferSpec(freeze_blocks=1), training=config)

    return train_tuned(task, grid, [0, 1], configure, eta=3, workers=workers)


def test_two_workers_train_the_same_models_as_one():
    previous = torch.get_num_threads()
    alone = raced(Workers(1))  # in this process, on one thread for each job
    assert torch.get_num_threads() == previous
    pool = Workers(2)
    try:
        together = raced(pool)
    finally:
        pool.close()
    assert together.setting == alone.setting and together.rungs == alone.rungs
    for seed, result in alone.results.items():
        mine, theirs = result.model.state_dict(), together.results[seed].model.state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        assert together.results[seed].history[-1]["validation_loss"] == result.history[-1]["validation_loss"]


def test_progress_of_a_worker_training_reaches_this_process():
    heard = []
    pool = Workers(2)
    try:
        with progress.listening(lambda event, label, payload: heard.append((event, label))):
            raced(pool, label="toy")
    finally:
        pool.close()
    started = {label for event, label in heard if event == "started"}
    assert "toy seed 0 0.3" in started and "toy seed 1 3.0" in started
    assert any(event == "ended" for event, _ in heard)


def test_auto_is_a_worker_per_core_on_the_cpu():
    assert resolve_workers(3, "cpu") == 3
    assert resolve_workers("auto", "cpu") >= 1


def test_without_a_cluster_the_run_gets_its_local_processes():
    runtime = SimpleNamespace(workers=3, device="cpu", cluster=None, checkpoint_dir="unused")
    pool = for_runtime(runtime)
    assert isinstance(pool, Workers) and pool.count == 3 and not pool.remote and pool.scratch is None
    assert for_runtime(runtime) is pool  # one pool a run
