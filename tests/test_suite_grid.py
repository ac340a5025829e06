"""How `kedro suite` schedules its tasks (headstart.suite_grid) and which it trains (headstart.suite),
with fake task runs: at most `concurrent_tasks` at once, a failure stops no other task, a task that
finished with the same parameters is skipped, and the fingerprint covers what the task's pipelines read,
not where their trainings run."""

import _thread
import logging
import os
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from kedro.framework.startup import bootstrap_project

from headstart.suite import (
    FINISHED_FILE,
    SuiteTasksFailed,
    _to_run,
    finished_before,
    mark_finished,
    marking,
    merged,
    plan_suite,
    task_fingerprint,
    task_runtime_params,
)
from headstart.suite_grid import TaskFailed, TaskProcesses, run_tasks
from tests.conftest import PROJECT_ROOT, copy_project


class FakeTasks:
    """Task runs that take a moment, count how many run at once, and fail when named so."""

    def __init__(self, failing=(), seconds=0.05) -> None:
        self.failing, self.seconds = set(failing), seconds
        self.started, self.running, self.most = [], 0, 0
        self.lock = threading.Lock()

    def __call__(self, task: str) -> None:
        with self.lock:
            self.started.append(task)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        if task in self.failing:
            raise TaskFailed("its kedro run ended with exit code 1")


def test_tasks_run_at_most_concurrent_at_once_in_the_order_given():
    fake = FakeTasks()
    tasks = [f"t{i}" for i in range(7)]
    assert run_tasks(tasks, 3, fake) == {}
    assert fake.most == 3 and sorted(fake.started) == sorted(tasks)
    assert fake.started[:3] == tasks[:3] and fake.started[-1] in tasks[3:]


def test_one_task_at_a_time_runs_them_in_order():
    fake = FakeTasks(seconds=0)
    run_tasks(["a", "b", "c"], 1, fake)
    assert fake.started == ["a", "b", "c"] and fake.most == 1


def test_a_failed_task_stops_no_other_and_is_named(caplog):
    fake = FakeTasks(failing={"b", "d"})
    with caplog.at_level(logging.ERROR):
        failures = run_tasks(["a", "b", "c", "d", "e"], 2, fake)
    assert list(failures) == ["b", "d"] and all(isinstance(e, TaskFailed) for e in failures.values())
    assert sorted(fake.started) == ["a", "b", "c", "d", "e"]
    assert "Suite task b failed: its kedro run ended with exit code 1" in caplog.text


@pytest.fixture
def ctrl_c_handled():
    """Python's own Ctrl-C handler for the test: a pytest-xdist worker ignores SIGINT (its controller takes
    Ctrl-C), and `_thread.interrupt_main` does nothing where SIGINT is ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_an_interrupt_drops_the_tasks_not_started_and_stops_those_running(ctrl_c_handled):
    started, stopped = [], []

    def interrupted(task: str) -> None:
        started.append(task)
        if task == "a":
            _thread.interrupt_main()  # Ctrl-C: the waiting main thread gets the KeyboardInterrupt
        time.sleep(0.3)

    with pytest.raises(KeyboardInterrupt):
        run_tasks(["a", "b", "c", "d"], 2, interrupted, stop=lambda: stopped.append(True))
    time.sleep(0.5)
    assert stopped == [True] and "a" in started and not {"c", "d"} & set(started)


def test_sigterm_stops_the_running_tasks_as_an_interrupt_does():
    stopped = []

    def terminated(task: str) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # as Airflow stopping the suite's task
        time.sleep(0.3)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        run_tasks(["a", "b"], 1, terminated, stop=lambda: stopped.append(True))
    assert stopped == [True] and signal.getsignal(signal.SIGTERM) is before


def test_a_task_is_marked_finished_only_when_its_run_ends_well(tmp_path):
    folders = {"a": tmp_path / "a", "b": tmp_path / "b"}
    fingerprints = {"a": "f-a", "b": "f-b"}
    mark_finished(folders["b"], "b", "old")  # an earlier run of b, with other parameters
    run_one = marking(folders, fingerprints, FakeTasks(failing={"b"}, seconds=0))
    run_one("a")
    with pytest.raises(TaskFailed):
        run_one("b")
    assert finished_before(folders["a"], "f-a") and not finished_before(folders["a"], "f-other")
    assert not (folders["b"] / FINISHED_FILE).exists()  # a failed run leaves no record: the next suite runs it


def test_a_finished_task_is_skipped_with_a_line_naming_it_unless_rerun(tmp_path, caplog):
    folders = {task: tmp_path / task for task in ("a", "b", "c")}
    fingerprints = {"a": "fa", "b": "fb", "c": "fc"}
    mark_finished(folders["a"], "a", "fa")
    mark_finished(folders["b"], "b", "another")  # its parameters changed since
    (folders["c"] / FINISHED_FILE).parent.mkdir()
    (folders["c"] / FINISHED_FILE).write_text("{not json")  # unreadable: as if it never finished
    with caplog.at_level(logging.INFO):
        assert _to_run(["a", "b", "c"], folders, fingerprints, rerun=False) == ["b", "c"]
    assert "Suite task a: finished before with the same parameters" in caplog.text
    assert "not trained again" in caplog.text and "Suite task b" not in caplog.text
    assert _to_run(["a", "b", "c"], folders, fingerprints, rerun=True) == ["a", "b", "c"]


def test_the_fingerprint_leaves_out_where_the_trainings_run():
    parameters = {
        "transfer": {"seeds": [0, 1, 2]},
        "runtime": {"workers": 1, "cluster": None, "progress": True, "time_budget_minutes": 10},
        "multitask": {"seeds": [0]},
    }
    keys, pipelines = ["runtime", "transfer"], ["ingest", "transfer"]
    base = task_fingerprint(parameters, keys, pipelines)
    elsewhere = {"runtime": {"workers": 4, "cluster": "tcp://127.0.0.1:8786", "progress": False}}
    assert task_fingerprint(merged(parameters, elsewhere), keys, pipelines) == base
    assert task_fingerprint(merged(parameters, {"multitask": {"seeds": [0, 1]}}), keys, pipelines) == base
    assert task_fingerprint(merged(parameters, {"transfer": {"seeds": [0, 1]}}), keys, pipelines) != base
    assert task_fingerprint(merged(parameters, {"runtime": {"time_budget_minutes": 5}}), keys, pipelines) != base
    assert task_fingerprint(parameters, keys, ["ingest"]) != base


def test_a_tasks_runtime_parameters_are_its_overrides_under_the_suites_params():
    parameters = {"suite": {"tasks": {"a": {"overrides": {"ingest": {"split": {"labels_per_class": 1}, "x": 1}}}}}}
    extra = {"ingest": {"split": {"seed": 3}}, "suite": {"concurrent_tasks": 3}}
    assert task_runtime_params("a", parameters, "data", extra) == {
        "ingest": {"split": {"labels_per_class": 1, "seed": 3}, "x": 1},
        "stored_data": "data/suite/a",
        "suite_task": "a",
    }


def test_the_plan_fingerprints_each_task_by_what_its_pipelines_read():
    """The test conf's two tasks, read as `kedro suite --env test` reads them (nothing is run)."""
    bootstrap_project(PROJECT_ROOT)
    plan = plan_suite(PROJECT_ROOT, "test", None, {}, rerun=False)
    assert plan.suite.chosen() == ["digits_inverted", "printed_letters"] and plan.suite.concurrent_tasks == 2
    assert len(set(plan.fingerprints.values())) == 2
    assert plan.folders["printed_letters"] == PROJECT_ROOT / "data/suite/printed_letters"
    # where the trainings run is no part of a task's parameters; the seeds are
    same = plan_suite(PROJECT_ROOT, "test", None, {"runtime": {"workers": 2}, "multitask": {"seeds": [5]}}, rerun=False)
    assert same.fingerprints == plan.fingerprints
    other = plan_suite(PROJECT_ROOT, "test", ["printed_letters"], {"transfer": {"seeds": [0, 1]}}, rerun=False)
    assert other.fingerprints["printed_letters"] != plan.fingerprints["printed_letters"]
    assert other.params_of("printed_letters")["transfer"]["seeds"] == [0, 1]  # the suite's --params reach the task


def test_tasks_whose_source_models_are_made_alike_share_their_folder():
    """Another target (printed letters against digits inverted) keeps the source: one folder of source models,
    so the suite pretrains it once; another source, image or pretraining gets a folder of its own."""
    bootstrap_project(PROJECT_ROOT)
    plan = plan_suite(PROJECT_ROOT, "test", None, {}, rerun=False)
    stores = {task: plan.params_of(task)["source_store"] for task in plan.suite.chosen()}
    assert stores["digits_inverted"] == stores["printed_letters"]
    assert stores["printed_letters"].startswith(f"{plan.stored_data}/suite/_sources/")
    far = plan_suite(PROJECT_ROOT, "test", ["printed_letters", "patch_rotation"], {}, rerun=False)
    assert far.params_of("patch_rotation")["source_store"] != far.params_of("printed_letters")["source_store"]
    longer = plan_suite(PROJECT_ROOT, "test", None, {"pretrain": {"training": {"epochs": 3}}}, rerun=False)
    assert longer.params_of("printed_letters")["source_store"] != stores["printed_letters"]


def test_concurrent_tasks_is_at_least_one():
    from pydantic import ValidationError

    from headstart.params import SuiteParams

    with pytest.raises(ValidationError, match="concurrent_tasks"):
        SuiteParams(tasks={"a": {"about": "a"}}, concurrent_tasks=0)
    assert SuiteParams(tasks={"a": {"about": "a"}}).concurrent_tasks == 2


def test_the_finished_record_names_the_task(tmp_path):
    mark_finished(tmp_path / "t", "t", "abc")
    assert '"task": "t"' in (tmp_path / "t" / FINISHED_FILE).read_text()
    assert not finished_before(Path(tmp_path / "missing"), "abc")


class FakeProcesses:
    """Stands in for TaskProcesses: records the tasks run and the cluster each was handed; fails `failing`."""

    ran: list = []
    failing: set = set()

    def __init__(self, project_path, env, pipelines, params_of) -> None:
        self.params_of = params_of

    def __call__(self, task: str) -> None:
        assert self.params_of(task)["runtime"]["cluster"] == "tcp://127.0.0.1:8786"
        FakeProcesses.ran.append(task)
        if task in self.failing:
            raise TaskFailed("its kedro run ended with exit code 1")

    def stop(self) -> None:
        pass


def test_a_failed_task_is_named_after_the_report_of_the_others_and_runs_again_next_time(tmp_path, monkeypatch):
    from headstart import suite

    project = copy_project(tmp_path)
    bootstrap_project(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reports = []
    monkeypatch.setattr(suite, "TaskProcesses", FakeProcesses)
    monkeypatch.setattr(suite, "shared_cluster", lambda runtime: nullcontext("tcp://127.0.0.1:8786"))
    monkeypatch.setattr(suite, "run_pipelines", lambda path, env, params, names: reports.append(params["suite"]["run"]))
    FakeProcesses.ran, FakeProcesses.failing = [], {"digits_inverted"}
    with pytest.raises(SuiteTasksFailed, match="digits_inverted: its kedro run ended with exit code 1") as failed:
        suite.run_suite(project, "test")
    assert "1 suite task(s) failed (the report covers the other 1)" in str(failed.value)
    assert sorted(FakeProcesses.ran) == ["digits_inverted", "printed_letters"] and reports == [["printed_letters"]]
    FakeProcesses.ran, FakeProcesses.failing = [], set()
    reported, trained, report = suite.run_suite(project, "test")
    assert FakeProcesses.ran == ["digits_inverted"] and trained == ["digits_inverted"]  # printed_letters finished
    assert reported == ["digits_inverted", "printed_letters"] and reports[-1] == reported
    assert report == "data/08_reporting/suite_report.md"  # under the environment's stored_data


def test_a_tasks_run_whose_parameters_are_invalid_fails_in_its_own_process(tmp_path):
    """TaskProcesses for real: a spawned `kedro run` that stops before any node (an invalid parameter)
    is a TaskFailed naming its exit code; this process goes on."""
    project = copy_project(tmp_path)
    folder = tmp_path / "data/suite/x"
    params = {"ingest": {"split": {"labels_per_class": 0}}, "stored_data": str(folder), "suite_task": "x"}
    processes = TaskProcesses(project, "test", ["ingest"], lambda task: params)
    with pytest.raises(TaskFailed, match="its kedro run ended with exit code 1"):
        processes("x")
    assert processes.running == set() and not folder.exists()
