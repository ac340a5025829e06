"""The docs' "Adding a method" paragraph (docs/methods/index.md), step by step, with a toy strategy: a file
with a registered `Strategy` subclass, then a conf entry; parameter validation, the estimate, the advice's
race and the tuning then take it with no other edit."""

from typing import Annotated

import pytest
import torch
from pydantic import Field

from headstart.ml import cost
from headstart.ml.strategies import STRATEGIES, Knobs, Strategy, extract_features, register, train_tuned
from headstart.ml.strategies.race import RaceCandidate, race_strategies
from headstart.params import RuntimeParams, StrategyParams
from tests.ml.test_strategies import task

TOY = "toy_nearest_centroid"


# (1) The file: a Strategy subclass with its name, family, knobs (declared once) and `train`.
class NearestCentroidKnobs(Knobs):
    shrink: list[Annotated[float, Field(ge=0, le=1)]] = Field([0.0, 0.5], min_length=1)  # tuned: its grid


class NearestCentroid(Strategy):
    """The head's rows are the class means of the frozen source features, shrunk toward their grand mean."""

    name = TOY
    family = "parameter-based"
    Knobs = NearestCentroidKnobs
    trains_epochs = False

    def grid(self, knobs, lr_scales):
        return [{"shrink": value} for value in knobs.shrink]

    def train(self, task, config, result, checkpoint):
        features = extract_features(result.model, task.train[0])
        shrink = config.tuned("shrink", config.knobs.shrink[0])
        means = torch.stack([features[task.train[1] == c].mean(0) for c in range(task.num_classes)])
        means = (1 - shrink) * means + shrink * features.mean(0)
        with torch.no_grad():  # x·μ − ‖μ‖²/2: the nearest mean wins
            result.model.head.weight.copy_(means)
            result.model.head.bias.copy_(-0.5 * means.pow(2).sum(1))

    def phases(self, config):
        return []  # no epochs: the estimate prices its passes below

    def price(self, meter, plan, config, scale):
        return 0, 0.0, meter.passes(config, plan.train, scale) + meter.passes(config, plan.validation, scale)


@pytest.fixture
def registered():
    """(2) Registered as importing its module in ml/strategies/__init__.py would register it; removed after."""
    register(NearestCentroid)
    yield STRATEGIES[TOY]
    STRATEGIES.pop(TOY)


def conf_entry(**more) -> StrategyParams:
    """(3) Its conf entry, as `transfer.strategies.<row>` would hold it."""
    return StrategyParams.model_validate({"procedure": TOY, "copy_blocks": "all", "freeze_blocks": "all", **more})


def test_a_toy_strategy_is_validated_priced_raced_and_tuned_with_no_other_edit(registered, tmp_path):
    params = conf_entry(shrink=[0.0, 0.9])
    assert params.strategy is registered and params.tuning_grid([1.0]) == [{"shrink": 0.0}, {"shrink": 0.9}]
    assert params.uses == "source model"
    with pytest.raises(ValueError, match=f"{TOY}: shrink.0"):
        conf_entry(shrink=[2.0])  # its own knob's range, checked by its own Knobs
    with pytest.raises(ValueError, match=f"{TOY}: neighbours: Extra inputs"):
        conf_entry(neighbours=[3])  # a knob it does not declare

    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), workers=1)
    grid = params.tuning_grid([1.0])

    def configure(setting, seed):
        return params.to_config(seed, runtime, **setting)

    target = task()
    plan = cost.Plan(TOY, tuple(configure(s, 0) for s in grid), 2, len(target.train[0]), len(target.validation[0]))
    estimate = cost.estimate_cost(target, [plan])
    row = estimate.table.set_index("strategy").loc[TOY]
    assert row["procedure"] == TOY and row["trainings"] == 4 and row["steps_per_training"] == 0
    assert row["expected_seconds"] > 0

    tuned = train_tuned(target, grid, [0, 1], configure)
    assert tuned.setting in grid and set(tuned.results) == {0, 1}
    assert tuned.validation_accuracy > 1 / 3  # better than chance on the toy's three classes

    candidate = RaceCandidate(TOY, grid, configure, target, source="source", freeze_blocks=3)
    advised, table, rungs = race_strategies([candidate], [0], budget_share=1.0, eta=3, first_rung_share=0.0)
    assert advised == TOY and table.loc[0, "strategy"] == TOY and not table.loc[0, "cut_in_race"] and rungs == []


def test_an_unknown_strategy_is_refused_naming_the_ones_there_are():
    with pytest.raises(ValueError, match="unknown strategy toy_nearest_centroid; the strategies there are: bss, coral"):
        conf_entry()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"procedure": "fit", "model": "pixels", "copy_blocks": 0}, "fit runs on model: source, not pixels"),
        ({"procedure": "nearest_neighbours"}, "nearest_neighbours runs on model: pixels, not source"),
        ({"procedure": "tradaboost", "copy_blocks": 0}, "tradaboost boosts on the source model's features"),
        ({"procedure": "linear_classifier", "adaptation": {"kind": "l2_sp", "weight": [1]}}, "by procedure: fit"),
        ({"adaptation": {"kind": "l2_sp", "weight": [1]}, "copy_blocks": 0}, "copy_blocks must not be 0"),
        ({"adaptation": {"kind": "fixmatch", "weight": [1], "threshold": 2}}, "fixmatch: threshold"),
        ({"adaptation": {"kind": "bss"}}, "bss: weight: Field required"),
    ],
)
def test_a_conf_entry_its_strategy_cannot_train_is_refused_naming_the_field(entry, message):
    with pytest.raises(ValueError, match=message):
        StrategyParams.model_validate(entry)
