import math

import pytest
import torch

from headstart.ml.cost import Knobs, Plan, check_limit, estimate_cost, phase_steps, training_steps
from headstart.ml.errors import CostLimitError
from headstart.ml.strategies import StrategyConfig, TargetTask
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_transfer import tiny, toy_data

BUDGET = TrainConfig(epochs=40, batch_size=32, min_batches_per_epoch=4, progress=False)


def test_steps_are_epochs_times_the_larger_of_the_batches_and_the_minimum():
    assert phase_steps(BUDGET, 100) == 40 * 4  # ⌈100/32⌉ = 4 batches
    assert phase_steps(BUDGET, 10) == 40 * 4  # 1 label per class: the minimum of 4 batches still holds
    assert phase_steps(BUDGET, 1000) == 40 * 32  # ⌈1000/32⌉ = 32
    assert phase_steps(BUDGET.model_copy(update={"min_batches_per_epoch": None}), 10) == 40  # one batch of 10
    probe = BUDGET.model_copy(update={"epochs": 5})
    lp_ft = StrategyConfig(
        procedure="probe_then_finetune",
        spec=TransferSpec(freeze_blocks="all"),
        training=BUDGET.model_copy(update={"epochs": 20}),
        probe=probe,
    )
    assert training_steps(lp_ft, 100) == (20 + 5) * 4  # the probe counts
    assert training_steps(StrategyConfig(procedure="linear_classifier", spec=TransferSpec(), training=BUDGET), 100) == 0


def task() -> TargetTask:
    images, labels = toy_data()
    torch.manual_seed(1)
    source = ({"name": "small_cnn", "widths": [4, 8]}, tiny().state_dict())
    return TargetTask(*source, 3, (images, labels), (images, labels))


def plans(seeds: int = 2) -> list[Plan]:
    training = TrainConfig(epochs=3, batch_size=16, min_batches_per_epoch=4, progress=False)
    scratch = StrategyConfig(procedure="fit", spec=TransferSpec(copy_blocks=0), training=training)
    top = StrategyConfig(procedure="fit", spec=TransferSpec(freeze_blocks=-1), training=training)
    svm = StrategyConfig(procedure="linear_classifier", spec=TransferSpec(freeze_blocks="all"), training=training)
    return [
        Plan("scratch", (scratch, scratch), seeds, 48, 48, 48, required=True),
        Plan("finetune_top", (top, top, top), seeds, 48, 48, 48),
        Plan("feature_svm", (svm,), seeds, 48, 48, 48),
    ]


@pytest.fixture(scope="module")
def estimate():
    """Three strategies over three seeds, under a limit no estimate meets (one measurement for the module)."""
    return estimate_cost(task(), plans(seeds=3), limit_minutes=1e-9)


def test_the_estimate_counts_every_candidate_and_seed_and_prices_the_steps_it_timed(estimate):
    rows = estimate.table.set_index("strategy")
    assert list(rows["trainings"]) == [6, 9, 3] and estimate.trainings == 18
    assert list(rows["steps_per_training"]) == [12, 12, 0]  # 3 epochs × max(⌈48/16⌉, 4)
    assert (rows.loc[["scratch", "finetune_top"], "seconds_per_step"] > 0).all()
    assert math.isnan(rows.loc["feature_svm", "seconds_per_step"]) and rows.loc["feature_svm", "expected_seconds"] > 0
    steps = rows["trainings"] * rows["steps_per_training"] * rows["seconds_per_step"].fillna(0)
    assert (rows["expected_seconds"] >= steps).all()  # plus the validation and test passes
    assert estimate.seconds == pytest.approx(rows["expected_seconds"].sum())
    text = estimate.text("Cost")
    assert "\nfinetune_top " in text and f"Total: 18 trainings, about {estimate.seconds / 60:.1f} min" in text


def test_cuts_are_priced_from_the_same_measurements_and_never_drop_a_baseline(estimate):
    seeds = next(cut for cut in estimate.cuts if cut.what.startswith("transfer.seeds"))
    assert seeds.what == "transfer.seeds 3 → 1"
    assert seeds.saves_seconds + seeds.leaves_seconds == pytest.approx(estimate.seconds)
    assert seeds.leaves_seconds == pytest.approx(estimate.seconds / 3, rel=0.05)  # test passes scale with seeds too
    dropped = next(cut for cut in estimate.cuts if cut.what.startswith("drop"))
    assert "finetune_top" in dropped.what and "feature_svm" in dropped.what and "scratch" not in dropped.what
    assert any("up to 3 candidates → 1" in cut.what for cut in estimate.cuts)
    assert any(cut.what.endswith("halved") for cut in estimate.cuts)


def test_the_limit_stops_naming_what_to_cut_and_what_each_saves(estimate):
    summary = estimate.summary("Cost")
    check_limit(summary, None)  # no limit
    check_limit(summary, summary["estimated_minutes"] * 2)
    with pytest.raises(CostLimitError) as stopped:
        check_limit(summary, 1e-9, Knobs(limit="learning_curve limit"))
    message = str(stopped.value)
    assert "exceeds learning_curve limit = 1e-09; nothing was trained" in message
    assert "- transfer.seeds 3 → 1: saves" in message and "- drop from transfer.strategies: finetune_top" in message
    assert "(leaves" in message


def test_measuring_leaves_the_random_state_as_it_was():
    measured = task()
    torch.manual_seed(7)
    before = torch.get_rng_state()
    estimate_cost(measured, plans(seeds=1)[1:])
    assert torch.equal(torch.get_rng_state(), before)


def test_a_raced_grid_is_priced_at_the_share_of_epochs_racing_trains():
    from headstart.ml.cost import Plan

    candidates = tuple(
        StrategyConfig(procedure="fit", spec=TransferSpec(), training=BUDGET.model_copy(update={"body_lr": lr}))
        for lr in (1e-4, 1e-3, 1e-2)
    )
    raced = Plan("scratch", candidates, seeds=10, train=100, validation=100, racing_eta=3)
    assert raced.raced_share == (3 * 13 + 1 * 27) / (3 * 40)  # all three to epoch 13, one on to 40
    assert Plan("scratch", candidates, seeds=10, train=100, validation=100).raced_share == 1.0
    svm = StrategyConfig(procedure="linear_classifier", spec=TransferSpec(), training=BUDGET)
    assert Plan("svm", (svm, svm), seeds=1, train=10, validation=10, racing_eta=3).raced_share == 1.0
