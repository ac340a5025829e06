import math

import pandas as pd
import pytest

from headstart.ml.looks import LookDesign
from headstart.ml.multitask import TrainedNetwork, TunedMethod
from headstart.ml.multitask.looks import run_looks
from headstart.ml.workers import Workers

# each method's test accuracy per seed: `clear` beats the baseline by 10 % on every seed (a decision at
# the first look), `noisy` straddles it (open: it gets the third seed), `tied` equals it (equivalent)
ACCURACY = {
    "single_task": {0: 0.50, 1: 0.60, 2: 0.55},
    "clear": {0: 0.55, 1: 0.66, 2: 0.605},
    "noisy": {0: 0.60, 1: 0.50, 2: 0.70},
    "tied": {0: 0.50, 1: 0.60, 2: 0.55},
}


class FakeRecipe:
    """Trains nothing: a network per seed whose info says which seed and what it cost."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name, self.seconds, self.trained = name, seconds, []

    def networks(self, seeds):
        self.trained += list(seeds)
        return [TrainedNetwork({}, None, {"seed": s, "part": "all", "train_seconds": self.seconds}) for s in seeds]

    def tune(self, seeds):
        return TunedMethod(self.networks(seeds), {"all": {"setting": {"lr_scale": 1.0}}})

    def train_kept(self, seeds, settings):
        assert settings == {"all": {"lr_scale": 1.0}}  # the first look's setting, kept
        return self.networks(seeds)


def evaluate(name, networks, tuning):
    return pd.DataFrame(
        [
            {"method": name, "seed": n.info["seed"], "task": task, "accuracy": a, "macro_f1": a}
            for n in networks
            for task, a in (("left", ACCURACY[name][n.info["seed"]]), ("right", ACCURACY[name][n.info["seed"]]))
        ]
    )


def looks_of(seconds_left):
    recipes = {name: FakeRecipe(name, 10.0) for name in ACCURACY}
    design = LookDesign((2, 3), 0.05, equivalence_points=2.0)
    looked = run_looks(recipes, "single_task", [0, 1, 2], design, Workers(1), lambda: seconds_left, evaluate)
    return recipes, looked


def test_decided_methods_stop_open_ones_get_the_next_seed_with_the_baseline():
    recipes, looked = looks_of(math.inf)
    decisions = looked.record["decisions"]
    assert decisions["clear"]["verdict"] == "better" and decisions["clear"]["seeds"] == 2
    assert decisions["clear"]["gain_percent"] == pytest.approx(10.0)  # Δp: +10 % on every task and metric
    assert decisions["tied"]["verdict"] == "equivalent" and decisions["tied"]["look"] == 1
    assert decisions["noisy"]["verdict"] == "open" and decisions["noisy"]["seeds"] == 3
    assert decisions["noisy"]["open_because"] == "seeds ran out at n = 3"
    assert recipes["clear"].trained == [0, 1] and recipes["tied"].trained == [0, 1]
    assert recipes["noisy"].trained == [0, 1, 2] and recipes["single_task"].trained == [0, 1, 2]
    assert looked.record["seeds_trained"] == {"single_task": 3, "clear": 2, "noisy": 3, "tied": 2}
    assert looked.record["seeds_saved"] == 2
    assert set(looked.results["seed"][looked.results["method"] == "noisy"]) == {0, 1, 2}


def test_a_look_that_does_not_fit_the_budget_is_cut_and_named():
    recipes, looked = looks_of(15.0)  # the open row's seed and the baseline's: 20 s on one worker
    assert recipes["noisy"].trained == [0, 1] and recipes["single_task"].trained == [0, 1]
    assert looked.record["decisions"]["noisy"]["open_because"] == "time ran out before n = 3"
    assert looked.record["looks"][0]["cut"] == ["noisy, seed 2, about 10 s"]
