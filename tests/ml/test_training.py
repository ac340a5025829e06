import math

import pytest
import torch

from headstart.ml.config import available_devices, check_device
from headstart.ml.training import (
    CrossEntropyObjective,
    TrainConfig,
    epoch_order,
    evaluate,
    fit,
    make_schedule,
    predict_logits,
)
from tests.ml.test_transfer import tiny, toy_data

CONFIG = TrainConfig(epochs=4, batch_size=16, body_lr=3e-3, head_lr=3e-3, progress=False, device="cpu")


def test_loss_goes_down_and_metrics_are_reported():
    torch.manual_seed(0)
    model = tiny()
    images, labels = toy_data()
    result = fit(model, (images, labels), (images, labels), CONFIG.model_copy(update={"epochs": 20}))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    metrics = evaluate(model, images, labels)
    assert metrics["accuracy"] > 0.6 and 0 <= metrics["macro_f1"] <= 1 and metrics["nll"] > 0


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    images, labels = toy_data()
    torch.manual_seed(0)
    uninterrupted = tiny()
    expected = fit(uninterrupted, (images, labels), (images, labels), CONFIG)

    torch.manual_seed(0)
    interrupted = tiny()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    fit(interrupted, (images, labels), (images, labels), CONFIG.model_copy(update={"epochs": 2}), checkpoint)
    resumed_model = tiny()  # a fresh process: only the checkpoint survives
    resumed = fit(resumed_model, (images, labels), (images, labels), CONFIG, checkpoint)

    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[-1]["train_loss"] == pytest.approx(expected.history[-1]["train_loss"], rel=1e-5)
    for name, tensor in uninterrupted.state_dict().items():
        assert torch.allclose(tensor.float(), resumed_model.state_dict()[name].float(), atol=1e-5), name


class _RunsCode:
    """A pickle that, if loaded without weights_only, would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_or_does_not_fit_is_ignored_never_resumed(tmp_path, caplog):
    images, labels = toy_data()
    torch.manual_seed(0)
    expected = fit(tiny(), (images, labels), (images, labels), CONFIG)
    marker = tmp_path / "code_ran"
    planted = {
        "pickled code": {"model": _RunsCode(marker)},
        "another model": {"model": tiny(widths=(3, 5)).state_dict(), "optimizer": {}, "epoch": 2},
        "truncated": None,
    }
    for name, content in planted.items():
        checkpoint = tmp_path / f"{name}.pt"
        if content is None:
            torch.save({"model": tiny().state_dict()}, checkpoint)
            checkpoint.write_bytes(checkpoint.read_bytes()[:100])
        else:
            torch.save(content, checkpoint)
        torch.manual_seed(0)
        with caplog.at_level("WARNING"):
            result = fit(tiny(), (images, labels), (images, labels), CONFIG, checkpoint)
        assert not marker.exists()
        assert f"Ignoring checkpoint {checkpoint}" in caplog.text, name
        assert [r["epoch"] for r in result.history] == [1, 2, 3, 4], name  # trained from the start
        assert result.history[-1]["train_loss"] == pytest.approx(expected.history[-1]["train_loss"], rel=1e-5)
        caplog.clear()


@pytest.mark.parametrize("where", ["reading", "resuming"])
def test_an_error_that_says_nothing_about_the_checkpoint_propagates_instead_of_restarting(tmp_path, monkeypatch, where):
    """CUDA running out of memory while a checkpoint is read or applied must not restart at epoch 0."""
    images, labels = toy_data()
    checkpoint = tmp_path / "checkpoint.pt"
    fit(tiny(), (images, labels), (images, labels), CONFIG.model_copy(update={"epochs": 1}), checkpoint)
    assert checkpoint.exists()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    if where == "reading":
        monkeypatch.setattr(torch, "load", out_of_memory)
    else:
        monkeypatch.setattr(CrossEntropyObjective, "load_state_dict", out_of_memory)  # applied after the model
    with pytest.raises(torch.OutOfMemoryError):
        fit(tiny(), (images, labels), (images, labels), CONFIG, checkpoint)
    assert checkpoint.exists()  # kept, for the run that has the memory


def test_non_finite_loss_stops_with_a_clear_error():
    model = tiny()
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    images, labels = toy_data()
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 1, step 1"):
        fit(model, (images, labels), (images, labels), CONFIG)


class _InfiniteFromCall(CrossEntropyObjective):
    """Cross-entropy whose loss becomes infinite from the `bad_call`-th step on."""

    def __init__(self, bad_call):
        super().__init__()
        self.calls, self.bad_call = 0, bad_call

    def loss(self, model, inputs, targets):
        self.calls += 1
        loss, parts = super().loss(model, inputs, targets)
        return (loss * float("inf") if self.calls >= self.bad_call else loss), parts


def test_a_loss_that_turns_infinite_mid_epoch_is_named_by_its_epoch_and_first_bad_step():
    images, labels = toy_data()
    steps = -(-len(images) // CONFIG.batch_size)
    objective = _InfiniteFromCall(bad_call=steps + 3)  # the third step of the second epoch
    with pytest.raises(FloatingPointError, match="training loss is inf at epoch 2, step 3:"):
        fit(tiny(), (images, labels), (images, labels), CONFIG, objective=objective)


@pytest.mark.gpu
def test_bf16_training_step_on_cuda():
    torch.manual_seed(0)
    model = tiny()
    images, labels = toy_data()
    result = fit(
        model, (images, labels), (images, labels), TrainConfig(epochs=3, batch_size=16, progress=False, device="cuda")
    )
    assert next(model.parameters()).device.type == "cuda"
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_an_epoch_of_a_tiny_set_makes_at_least_the_minimum_number_of_steps():
    generator = torch.Generator().manual_seed(0)
    order = epoch_order(10, TrainConfig(batch_size=4, min_batches_per_epoch=5), generator)
    assert len(order) == 20 and sorted(order[:10].tolist()) == list(range(10))  # whole passes, shuffled
    assert len(epoch_order(100, TrainConfig(batch_size=4, min_batches_per_epoch=5), generator)) == 100


def test_fit_makes_the_minimum_number_of_optimizer_steps_per_epoch():
    class CountingObjective(CrossEntropyObjective):
        steps = 0

        def after_step(self, model, inputs, targets):
            CountingObjective.steps += 1

    images, labels = toy_data(10)
    config = TrainConfig(epochs=2, batch_size=4, min_batches_per_epoch=5, progress=False)
    fit(tiny(), (images, labels), (images, labels), config, objective=CountingObjective())
    assert CountingObjective.steps == 2 * 5


class ScriptedValidation(CrossEntropyObjective):
    """Validation numbers given per epoch, to test what `fit` keeps and when it stops."""

    def __init__(self, scores):
        super().__init__()
        self.scores = iter(scores)

    def validate(self, model, images, targets):
        accuracy, loss = next(self.scores)
        return {"validation_accuracy": accuracy, "validation_loss": loss}


def test_the_kept_epoch_has_the_best_validation_accuracy_not_the_lowest_loss():
    """From scratch on a few labels the loss is lowest at epoch 1 (still at chance) and rises while
    accuracy climbs: selecting on loss kept the untrained model (issue 10)."""
    images, labels = toy_data()
    scripted = [(0.10, 2.0), (0.30, 2.4), (0.60, 2.9), (0.60, 2.7), (0.50, 3.0)]
    result = fit(
        tiny(),
        (images, labels),
        (images, labels),
        CONFIG.model_copy(update={"epochs": 5}),
        objective=ScriptedValidation(scripted),
    )
    assert result.best_epoch == 4  # the accuracy tie of epochs 3 and 4 goes to the lower loss


def test_early_stopping_waits_for_min_epochs():
    images, labels = toy_data()
    flat = [(0.5, 1.0)] + [(0.1, 1.0)] * 9  # nothing improves after epoch 1
    config = CONFIG.model_copy(update={"epochs": 10, "patience": 2})
    assert len(fit(tiny(), (images, labels), (images, labels), config, objective=ScriptedValidation(flat)).history) == 3
    waited = config.model_copy(update={"min_epochs": 6})
    result = fit(tiny(), (images, labels), (images, labels), waited, objective=ScriptedValidation(flat))
    assert len(result.history) == 6 and result.stopped_early and result.best_epoch == 1


def test_an_epoch_draws_only_the_permutations_it_uses():
    """A whole number of passes consumes exactly that many permutations (RandomSampler draws one more)."""
    used, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    epoch_order(10, TrainConfig(batch_size=5), used)
    torch.randperm(10, generator=reference)
    assert torch.equal(used.get_state(), reference.get_state())


def test_prediction_on_a_cpu_runs_in_the_precision_of_the_callers_autocast_as_fits_validation_does():
    torch.manual_seed(0)
    model, (images, _) = tiny(), toy_data()
    full = predict_logits(model, images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reduced = predict_logits(model, images)
    assert reduced.dtype == torch.float32 and not torch.equal(full, reduced)  # computed in bf16 ...
    assert torch.allclose(full, reduced, atol=0.05, rtol=0.05)  # ... to bf16's precision


def test_cosine_schedule_warms_up_linearly_then_anneals_to_zero_per_optimizer_step():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    config = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=1, warmup_start=0.1)
    schedule = make_schedule(optimizer, config, steps_per_epoch=2)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    warmup = [0.1, 0.1 + 0.9 / 2]
    cosine = [0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)]
    assert rates == pytest.approx(warmup + cosine)
    assert make_schedule(optimizer, TrainConfig(), steps_per_epoch=2) is None  # constant by default


def test_gradient_clipping_bounds_each_sgd_step_by_the_rate_times_the_norm():
    images, labels = toy_data()
    config = CONFIG.model_copy(
        update={"epochs": 1, "optimizer": "sgd", "weight_decay": 0.0, "body_lr": 0.1, "head_lr": 0.1}
    )
    torch.manual_seed(0)
    clipped, free = tiny(), tiny()
    free.load_state_dict(clipped.state_dict())
    start = torch.cat([p.detach().flatten().clone() for p in clipped.parameters()])
    fit(clipped, (images, labels), (images, labels), config.model_copy(update={"clip_grad_norm": 1e-6}))
    fit(free, (images, labels), (images, labels), config)
    steps = 3  # 48 images in batches of 16
    moved = torch.cat([p.detach().flatten() for p in clipped.parameters()]) - start
    # SGD with momentum 0.9: step t moves at most lr · c · (1 + 0.9 + … + 0.9^(t-1))
    assert moved.norm() <= 0.1 * 1e-6 * sum(1 + sum(0.9**i for i in range(1, t)) for t in range(1, steps + 1)) * 1.01
    free_moved = torch.cat([p.detach().flatten() for p in free.parameters()]) - start
    assert free_moved.norm() > 1e-3


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_run_killed_mid_training_resumes_with_its_optimizer_and_schedule(tmp_path, schedule, monkeypatch):
    images, labels = toy_data()
    config = CONFIG.model_copy(update={"schedule": schedule, "warmup_epochs": 1, "checkpoint_seconds": 0.0})
    torch.manual_seed(0)
    uninterrupted = tiny()
    fit(uninterrupted, (images, labels), (images, labels), config)

    torch.manual_seed(0)
    killed = tiny()
    checkpoint = tmp_path / "checkpoint.pt"
    validations = []

    def validate_then_die(self, model, images, targets):
        validations.append(1)
        if len(validations) == 3:
            raise KeyboardInterrupt  # the kill, after two epochs were checkpointed
        return original(self, model, images, targets)

    original = CrossEntropyObjective.validate
    monkeypatch.setattr(CrossEntropyObjective, "validate", validate_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, (images, labels), (images, labels), config, checkpoint)
    monkeypatch.setattr(CrossEntropyObjective, "validate", original)
    resumed_model = tiny()
    resumed = fit(resumed_model, (images, labels), (images, labels), config, checkpoint)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for name, tensor in uninterrupted.state_dict().items():
        assert torch.allclose(tensor.float(), resumed_model.state_dict()[name].float(), atol=1e-5), name


def test_a_device_this_machine_lacks_is_refused_naming_the_devices_found():
    found = available_devices()
    assert found[0] == "cpu" and check_device("auto") == "auto" and check_device("cpu") == "cpu"
    missing = f"cuda:{torch.cuda.device_count() + 7}"
    with pytest.raises(ValueError, match=f"{missing} is not available on this machine; devices found: {found[0]}"):
        check_device(missing)
