import pytest

from headstart.ml.cost import CostLimitError, Knobs, check_limit
from headstart.ml.multitask import WEIGHTINGS, MethodRecipe
from headstart.ml.multitask.cost import MethodPlan, StepCost, StepTimer, estimate_methods
from headstart.ml.racing import raced_epochs
from headstart.ml.training import TrainConfig
from tests.ml.test_multitask import TASKS, TRUNK, two_task_data

KNOBS = Knobs(seeds="multitask.seeds", grid="grids", strategies="multitask.methods", epochs="epochs", fewest_seeds=2)


def recipe(sharing, grid, epochs=6):
    images, labels = two_task_data(40, hidden_fraction=0.0)
    return MethodRecipe(
        sharing,
        lambda setting, tasks, seed: WEIGHTINGS["fixed"](tasks),
        lambda setting: 0.0,
        TRUNK,
        TASKS,
        {"head_depth": 1, "head_width": 8},
        (images, labels),
        (images, labels),
        lambda seed, setting: TrainConfig(epochs=epochs, batch_size=8, progress=False, seed=seed, min_epochs=2),
        grid,
        eta=3,
    )


class FixedTimer(StepTimer):
    def __call__(self, recipe):
        return StepCost(0.5 * len(recipe.parts), 0.0)  # every network's step: half a second


def test_a_row_counts_networks_seeds_and_candidates_and_prices_the_race():
    single = recipe("single_task", [{"lr_scale": 1.0}])
    hard = recipe("hard", [{"lr_scale": s} for s in (0.3, 1.0, 3.0)])
    plans = [MethodPlan("single", single, 3, "single", True), MethodPlan("hard", hard, 3, "hard")]
    found = estimate_methods(plans, KNOBS, None, 2, FixedTimer())
    rows = found.table.set_index("strategy")
    assert rows.loc["single", "trainings"] == 3 * 2 and rows.loc["hard", "trainings"] == 3 * 3
    assert rows.loc["hard", "steps_per_training"] == 6 * 5  # 40 images, batch 8
    assert rows.loc["single", "expected_seconds"] == 3 * 6 * 5 * 1.0  # two networks a step
    assert raced_epochs(6, 3, 3, 2) == 3 * 2 + 1 * 4  # every candidate to the rung at 2, the best on to 6
    assert rows.loc["hard", "expected_seconds"] == 3 * 10 * 5 * 0.5
    assert found.seconds == (90 + 75) / 2  # two workers


def test_over_the_budget_the_cuts_are_named_and_the_baseline_is_never_dropped():
    single = recipe("single_task", [{"lr_scale": 1.0}])
    hard = recipe("hard", [{"lr_scale": s} for s in (0.3, 1.0, 3.0)])
    plans = [MethodPlan("single", single, 3, "single", True), MethodPlan("hard", hard, 3, "hard")]
    found = estimate_methods(plans, KNOBS, 1.0, 1, FixedTimer())
    cuts = {cut.what: cut.saves_seconds for cut in found.cuts}
    assert cuts["multitask.seeds 3 → 2"] == pytest.approx(165 / 3)
    assert cuts["drop from multitask.methods: hard (1.2 min)"] == 75
    assert not any("single (" in what for what in cuts)
    with pytest.raises(CostLimitError, match=r"exceeds runtime\.time_budget_minutes = 1; nothing was trained"):
        check_limit(found.summary("Cost"), 1.0, KNOBS)
    check_limit(found.summary("Cost"), 3.0, KNOBS)  # 2.75 min fits


def test_the_step_is_timed_here_on_one_thread():
    timer = StepTimer()
    seconds = timer(recipe("hard", [{"lr_scale": 1.0}]))
    assert 0 < seconds.step < 5 and 0 <= seconds.epoch < 5 and timer.measuring_seconds > 0
    assert timer(recipe("hard", [{"lr_scale": 1.0}])) == seconds  # the same shape: timed once


def test_what_an_epoch_adds_to_its_steps_is_priced_in_every_epoch():
    class EpochTimer(StepTimer):
        def __call__(self, recipe):
            return StepCost(0.5 * len(recipe.parts), 0.2 * len(recipe.parts))

    single = recipe("single_task", [{"lr_scale": 1.0}])
    found = estimate_methods([MethodPlan("single", single, 3, "single", True)], KNOBS, None, 1, EpochTimer())
    assert found.table.loc[0, "expected_seconds"] == pytest.approx(3 * 6 * (5 * 1.0 + 0.4))
