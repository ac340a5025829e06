import math

import pytest
import torch

from headstart.ml.epochs import CheckpointFile, SeedRecord, last_epoch
from headstart.ml.training import TrainConfig

CONFIG = TrainConfig(epochs=10, patience=2, min_epochs=4, device="cpu", progress=False, checkpoint_seconds=3600.0)


def record(epoch, accuracy, loss):
    return {"epoch": epoch, "validation_accuracy": accuracy, "validation_loss": loss}


def test_the_kept_epoch_has_the_best_accuracy_ties_going_to_the_lower_loss():
    seed = SeedRecord()
    for epoch, accuracy, loss in [(1, 0.5, 1.0), (2, 0.7, 0.9), (3, 0.7, 0.8), (4, 0.7, 0.85)]:
        seed.add_epoch(epoch, record(epoch, accuracy, loss), lambda epoch=epoch: {"at": torch.tensor(epoch)}, CONFIG)
    assert seed.result.best_epoch == 3 and seed.best_state["at"] == 3 and seed.best_score == (0.7, -0.8)
    assert len(seed.result.history) == 4 and not seed.result.stopped_early


def test_patience_stops_a_seed_only_once_min_epochs_have_run():
    seed = SeedRecord()
    for epoch in range(1, 4):  # no better epoch after the first: patience has run out at 3, min_epochs not
        seed.add_epoch(epoch, record(epoch, 0.5, 1.0), dict, CONFIG)
    assert not seed.result.stopped_early
    seed.add_epoch(4, record(4, 0.5, 1.0), dict, CONFIG)
    assert seed.result.stopped_early and seed.result.best_epoch == 1
    unlimited = SeedRecord()
    for epoch in range(1, 8):
        unlimited.add_epoch(epoch, record(epoch, 0.5, 1.0), dict, CONFIG.model_copy(update={"patience": None}))
    assert not unlimited.result.stopped_early


def test_a_record_comes_back_from_its_checkpoint_entry():
    seed = SeedRecord()
    seed.add_epoch(1, record(1, 0.5, 1.0), lambda: {"w": torch.ones(2)}, CONFIG)
    back = SeedRecord.resumed(seed.saved())
    assert back.result == seed.result and back.best_score == seed.best_score
    assert torch.equal(back.best_state["w"], seed.best_state["w"])
    assert SeedRecord.resumed({**seed.saved(), "stopped_early": True}).result.stopped_early


def test_a_call_trains_to_its_pause_or_the_end_and_none_more_once_every_seed_has_stopped():
    running, stopped = SeedRecord(), SeedRecord()
    stopped.result.stopped_early = True
    assert last_epoch(0, CONFIG, [running]) == 10
    assert last_epoch(0, CONFIG.model_copy(update={"pause_after": 3}), [running, stopped]) == 3
    assert last_epoch(5, CONFIG, [stopped, stopped]) == 5


class Counter:
    """A Resumable holding one number, whose `resume` can fail part-way."""

    def __init__(self, fail_with=None):
        self.value, self.fail_with, self.restarts = 0, fail_with, 0

    def resume(self, saved):
        self.value = saved["value"]
        if self.fail_with is not None:
            raise self.fail_with
        return saved["epoch"]

    def restart(self):
        self.value, self.restarts = 0, self.restarts + 1

    def checkpoint(self, epoch):
        return {"value": self.value, "epoch": epoch}


def test_a_checkpoint_is_saved_after_the_first_epoch_then_when_due_or_finished_and_resumed(tmp_path):
    path = tmp_path / "run" / "checkpoint.pt"
    checkpoints, state = CheckpointFile(path, seconds=3600.0), Counter()
    state.value = 7
    checkpoints.save_if_due(state, 1, finished=False)  # the first: due at once
    state.value = 8
    checkpoints.save_if_due(state, 2, finished=False)  # within the hour: not due
    assert torch.load(path, weights_only=True) == {"value": 7, "epoch": 1}
    checkpoints.save_if_due(state, 3, finished=True)
    assert torch.load(path, weights_only=True) == {"value": 8, "epoch": 3}
    assert not path.with_suffix(".tmp").exists()  # written to a temporary file, then renamed
    resumed = Counter()
    assert CheckpointFile(path, math.inf).resume(resumed, torch.device("cpu")) == 3 and resumed.value == 8
    CheckpointFile(None, 0.0).save_if_due(state, 4, finished=True)  # no file: nothing written, nothing read
    assert CheckpointFile(None, 0.0).resume(Counter(), torch.device("cpu")) == 0


def test_a_checkpoint_that_does_not_fit_restarts_the_state_and_any_other_error_propagates(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    torch.save({"value": 5, "epoch": 2}, path)
    misfit = Counter(fail_with=KeyError("best_state"))
    with caplog.at_level("WARNING"):
        assert CheckpointFile(path, 0.0).resume(misfit, torch.device("cpu")) == 0
    assert misfit.value == 0 and misfit.restarts == 1 and "it does not fit this training" in caplog.text
    out_of_memory = Counter(fail_with=torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        CheckpointFile(path, 0.0).resume(out_of_memory, torch.device("cpu"))
    path.write_bytes(path.read_bytes()[:50])  # truncated: ignored before any state is touched
    truncated = Counter()
    assert CheckpointFile(path, 0.0).resume(truncated, torch.device("cpu")) == 0 and truncated.restarts == 0
