"""The later looks: decided rows stop, open rows get the next look's seeds (with the best baseline),
cheapest first while the budget lasts; what is cut is named; a strategy that cannot run is named."""

import math
from types import SimpleNamespace

from headstart.ml.comparison import later_looks
from headstart.ml.looks import LookDesign
from headstart.ml.strategies import StrategyConfig, TargetTask
from headstart.ml.training import TrainConfig
from headstart.ml.workers import Workers

SEEDS = list(range(10))
NOISE = [3.0, -2.0, 1.5, -1.0, 2.5, -3.0, 0.5, 1.0, -0.5, 2.0]  # points: a gain that never clears zero
ACCURACY = {
    "base": {s: 0.50 for s in SEEDS},
    "clear": {s: 0.80 + 0.01 * (s % 2) for s in SEEDS},  # 30 points better from the first look on
    "noisy": {s: 0.50 + NOISE[s] / 100 for s in SEEDS},
    "dear": {s: 0.50 + NOISE[::-1][s] / 100 for s in SEEDS},
}
SECONDS = {"base": 1.0, "clear": 1.0, "noisy": 2.0, "dear": 50.0}


class StubTrainer:
    grid = [{"lr_scale": 1.0}]

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def train(self, seeds, workers, setting):
        assert setting == {"lr_scale": 0.3}  # the first look's kept setting, not tuned again
        self.calls.append((self.name, list(seeds)))
        return SimpleNamespace(seeds=list(seeds))

    def models(self, tuned, classes, image_size):
        return {f"seed_{s}": s for s in tuned.seeds}


def evaluate(name, models):
    records = [{"seed": s, "accuracy": ACCURACY[name][s], "train_seconds": SECONDS[name]} for s in models.values()]
    return {"strategy": name, "seeds": records}, [{"run_name": f"{name} seed {s}"} for s in models.values()]


def run(seconds_left):
    calls = []
    trainers = {name: StubTrainer(name, calls) for name in ACCURACY}
    first = {name: evaluate(name, {s: s for s in range(3)})[0] for name in ACCURACY}
    for evaluation in first.values():
        for record in evaluation["seeds"]:
            record["lr_scale"] = 0.3
    design = LookDesign((3, 5, 10), 0.05, equivalence_points=None)
    record, later, models, runs = later_looks(
        trainers, first, design, SEEDS, "base", Workers(1), seconds_left, evaluate, ["a"], 8
    )
    return record, later, calls, runs


def test_decided_rows_stop_and_open_rows_get_every_later_look_with_the_best_baseline():
    record, later, calls, runs = run(lambda: math.inf)
    decisions = record["decisions"]
    assert decisions["clear"]["verdict"] == "better" and decisions["clear"]["seeds"] == 3
    assert decisions["noisy"]["verdict"] == "open" and decisions["noisy"]["seeds"] == 10
    assert decisions["noisy"]["open_because"] == "seeds ran out at n = 10"
    assert [s["seed"] for s in later["noisy"]] == list(range(3, 10)) and not later["clear"]
    assert ("base", [3, 4]) in calls and ("base", [5, 6, 7, 8, 9]) in calls  # the baseline trains what they need
    assert all(name != "clear" for name, _ in calls)
    assert record["seeds_trained"] == {"base": 10, "clear": 3, "noisy": 10, "dear": 10}
    assert record["seeds_saved"] == 7 and record["seeds_if_fixed"] == 40
    assert len(runs) == 7 + 7 + 7  # base, noisy and dear: seeds 3–9 each


def test_a_budget_that_binds_runs_the_cheapest_open_rows_and_names_what_it_cut():
    record, later, calls, _ = run(lambda: 10.0)  # 2 seeds of base and noisy fit (6 s); dear's 100 s do not
    assert record["decisions"]["dear"]["verdict"] == "open" and record["decisions"]["dear"]["seeds"] == 3
    assert record["decisions"]["dear"]["open_because"] == "time ran out before n = 5"
    assert record["looks"][0]["cut"] == ["dear, seeds 3–4, about 1.7 min"]  # 100 s
    assert all(name != "dear" for name, _ in calls)
    # the flipped comparison (cut what fits) would train dear and cut noisy
    assert [s["seed"] for s in later["noisy"]][:2] == [3, 4]


def test_tradaboost_is_not_applicable_when_the_source_classes_are_not_the_targets():
    config = StrategyConfig(procedure="tradaboost", training=TrainConfig())
    differ = TargetTask({}, {}, 3, (None, None), (None, None), shared_label_space=False)
    same = TargetTask({}, {}, 3, (None, None), (None, None), shared_label_space=True)
    assert "classes are not the target's" in config.strategy.not_applicable(differ)
    assert config.strategy.not_applicable(same) is None
    assert StrategyConfig(training=TrainConfig()).strategy.not_applicable(differ) is None
