"""The suite's scaling model (benchmarks/suite_scaling.py): the schedule it simulates, checked on cases
whose wall time is known by hand."""

import importlib.util
import sys

import pytest

from tests.conftest import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("suite_scaling", PROJECT_ROOT / "benchmarks" / "suite_scaling.py")
scaling = sys.modules["suite_scaling"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)
Batch, Task, simulate = scaling.Batch, scaling.Task, scaling.simulate


def two_looks(name: str) -> Task:
    """A lead-in of 1 s; a first look of four 4-s trainings, 2 s of decision; a later look of one 6-s training."""
    return Task(name, 1.0, [Batch("look 1", [4.0] * 4, gap_after=2.0), Batch("look 2", [6.0])])


def test_a_later_look_waits_for_the_first_and_the_decision():
    assert simulate([two_looks("a")], 4, None, 0.0, False) == pytest.approx(1 + 4 + 2 + 6)
    assert simulate([two_looks("a")], 2, None, 0.0, False) == pytest.approx(1 + 8 + 2 + 6)
    assert two_looks("a").critical_path() == pytest.approx(13)


def test_tasks_at_a_time_queue_while_tasks_at_once_fill_the_idle_workers():
    tasks = [two_looks("a"), two_looks("b")]
    # one at a time: the second starts when the first ends
    assert simulate(tasks, 4, 1, 0.0, False) == pytest.approx(2 * 13)
    # at once on 4 workers: both first looks share them (1 + 8), then both decide and end in parallel
    at_once = simulate(tasks, 4, None, 0.0, False)
    assert at_once == pytest.approx(1 + 8 + 2 + 6)


def test_the_overhead_and_a_straggler_lengthen_the_schedule():
    task = [Task("a", 0.0, [Batch("look 1", [4.0] * 8)])]
    plain = simulate(task, 8, None, 0.0, False)
    assert plain == pytest.approx(4)
    assert simulate(task, 8, None, 0.5, False) == pytest.approx(4.5)
    assert simulate(task, 8, None, 0.0, True) == pytest.approx(4 * scaling.STRAGGLER_SLOWDOWN)


def test_the_longest_training_goes_first():
    # 1, 1, 2 on 2 workers: the 2 beside the two 1s ends at 2; in the order given it would end at 3
    task = [Task("a", 0.0, [Batch("look 1", [1.0, 1.0, 2.0])])]
    assert simulate(task, 2, None, 0.0, False) == pytest.approx(2)


def test_merged_looks_hand_out_a_looks_strategies_together_with_their_gaps_after():
    task = Task("a", 0.0, [Batch("look 1", [4.0], 1.0), Batch("look 1", [4.0], 1.0), Batch("look 2", [1.0])])
    merged = task.merged_looks()
    assert [(b.stage, b.jobs, b.gap_after) for b in merged.batches] == [
        ("look 1", [4.0, 4.0], 2.0),
        ("look 2", [1.0], 0.0),
    ]
    assert simulate([task], 2, None, 0.0, False) == pytest.approx(4 + 1 + 4 + 1 + 1)
    assert simulate([merged], 2, None, 0.0, False) == pytest.approx(4 + 2 + 1)
