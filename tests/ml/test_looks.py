"""Planned looks: the decision rule, the error split over looks, the plan under a budget, and a
Monte-Carlo run of the real decision code on simulated seed results."""

import math

import pytest

from headstart.ml.comparison import plan_look
from headstart.ml.looks import LookDesign, decide, simulate
from headstart.ml.metrics import t_interval

DESIGN = LookDesign((3, 5, 10), 0.05, equivalence_points=2.0)


def test_the_error_is_split_over_the_looks_in_proportion_to_their_seeds():
    assert [round(DESIGN.look_error(j), 6) for j in range(3)] == [0.015, 0.01, 0.025]
    assert math.isclose(sum(DESIGN.look_error(j) for j in range(3)), 0.05)
    family = LookDesign((3, 5, 10), 0.05, control="family_wise", family=10)
    assert math.isclose(sum(family.look_error(j) for j in range(3)), 0.005)  # Bonferroni over 10 rows
    assert LookDesign((3, 10), 0.05, shares=(0.1, 0.9)).confidence(0) == pytest.approx(0.995)
    with pytest.raises(ValueError, match="rise"):
        LookDesign((5, 3))


def test_a_row_is_better_worse_equivalent_or_open_by_its_interval_at_the_looks_level():
    assert decide([5.0, 6.0, 7.0], DESIGN, 0).verdict == "better"
    assert decide([-5.0, -6.0, -7.0], DESIGN, 0).verdict == "worse"
    assert decide([0.1, -0.1, 0.0, 0.1, -0.1], DESIGN, 1).verdict == "equivalent"
    # clear of zero but inside the margin: equivalent (what a practitioner acts on), not "better"
    assert decide([0.4, 0.4, 0.4], DESIGN, 0).verdict == "equivalent"
    assert decide([2.5, 2.5, 2.5], DESIGN, 0).verdict == "better"
    assert decide([3.0, -2.0, 1.0], DESIGN, 0).verdict == "open"
    # the interval is the plain t-interval at 1 − α_j: at look 1, 98.5 %, wider than 95 %
    gains = [1.5, 2.0, 2.5]
    decision = decide(gains, DESIGN, 0)
    assert (decision.low, decision.high) == pytest.approx(t_interval(gains, 0.985)[1:])
    assert decision.low < t_interval(gains, 0.95)[1]
    # a flipped comparison would call this better: its 95 % interval clears zero, its look's does not
    assert t_interval(gains, 0.95)[1] > 0 and decision.verdict == "open"


def test_the_plan_takes_the_cheapest_open_rows_that_fit_and_names_the_rest():
    seconds = {"best": 10.0, "cheap": 5.0, "dear": 100.0, "middle": 20.0}
    chosen, cut, cost = plan_look(["dear", "cheap", "middle"], 2, seconds, "best", 80.0)
    assert chosen == ["cheap", "middle"] and cut == ["dear"] and cost == 2 * (10 + 5 + 20)
    everything, none_cut, _ = plan_look(["dear", "cheap", "middle"], 2, seconds, "best", math.inf)
    assert sorted(everything) == ["cheap", "dear", "middle"] and not none_cut


def test_monte_carlo_the_stated_error_holds_with_no_true_gain():
    """16 rows, no true gain, 4000 replications: the share of rows wrongly called better or worse stays
    under α = 5 % (per comparison), and under family-wise control the share of replications with any
    wrong call stays under α. Peeking at every seed from 3 to 10 at 95 % would be wrong about 15 %."""
    null = [0.0] * 16
    per_row = simulate(LookDesign((3, 5, 10), 0.05), null, spread=3.0, replications=20000, seed=1)
    assert per_row["wrong_decision_rate"] <= 0.05
    family = simulate(
        LookDesign((3, 5, 10), 0.05, control="family_wise", family=16), null, spread=3.0, replications=5000, seed=2
    )
    assert family["family_wise_error"] <= 0.05
    peeking = simulate(LookDesign(tuple(range(3, 11)), 0.05, shares=(1.0,) * 8), null, 3.0, 5000, seed=3)
    assert peeking["wrong_decision_rate"] > 0.08  # the naive rule: α at every look
    print(f"per row: {per_row}\nfamily-wise: {family}\npeeking at 95 %: {peeking}")


def test_monte_carlo_true_gains_are_decided_early_and_the_equivalent_ones_too():
    gains = [0.0] * 4 + [1.0] * 4 + [5.0] * 4 + [-5.0] * 4
    result = simulate(DESIGN, gains, spread=2.0, replications=5000, seed=4)
    assert result["wrong_decision_rate"] <= 0.05
    decided = result["decided_per_look"]
    assert sum(decided.values()) > 8  # the ±5-point rows and most of the zero rows decide
    assert result["mean_seeds"] < 10
    print(f"with true gains: {result}")
