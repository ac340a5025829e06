"""A suite's wall time on 8, 32 and 128 workers, simulated from what one `kedro suite` measured.

What the run measured (its MLflow runs, the newest suite parent in the tracking store or `--suite-run`):
for each task, every training's seconds on its worker (the `train_seconds` metric of each run tagged
headstart.level=training) and where it stood: a strategy's first look (its own Kedro node), a later look
of the comparison (the seeds beyond `--looks`' first), or the advice's race. The task's driver time is
the rest of its wall: ingest, pretraining and the advice's candidate sources before the first training,
each node's evaluation and decision after its trainings, the reports at the end. Measured as the gaps
between one batch's last training and the next batch's first, it is an upper bound: a gap includes any
wait for a worker another task held.

The model: each task is a chain of batches in the order its run handed them out (a batch waits for the
previous one and the driver's gap after it: the critical path of the looks); W workers of one torch
thread each take the longest training ready, each lasting its measured seconds plus the scheduler's
overhead per training (measured here: round trips of an empty job through a two-worker Dask
LocalCluster, headstart.ml.cluster); `concurrent_tasks` tasks at a time, or all at once. Rows:

- today's order: `kedro suite` as it ran (its concurrent tasks; each strategy's first look a node);
- all tasks at once: every task's chain started together;
- all tasks at once, a look's strategies together: a task's first look handed out as one batch, its
  nodes' gaps after it (the driver is one process);
- the same with stragglers: one worker in eight at half speed;
- bounds no schedule beats: the work over W, and the longest task's critical path.

The model is checked against the run: today's order at the run's own workers against its measured wall.
Left out: the halving rungs inside a strategy's grid (its candidates' trainings count as one batch); a
driver slowed by many tasks at once (each task's driver is a process of its own).

    .venv/bin/python benchmarks/suite_scaling.py --tracking-uri sqlite:///mlruns/mlflow.db --workers 8 32 128
    .venv/bin/python benchmarks/suite_scaling.py --smoke
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import time
from dataclasses import dataclass, field

import pandas as pd

STRAGGLER_SHARE, STRAGGLER_SLOWDOWN = 1 / 8, 2.0


@dataclass
class Batch:
    """Trainings handed out together, and the driver's seconds after the last of them ends."""

    stage: str  # "look 1", "look 2", ..., "race"
    jobs: list[float]
    gap_after: float = 0.0


@dataclass
class Task:
    name: str
    lead_in: float  # driver seconds before its first training
    batches: list[Batch] = field(default_factory=list)
    wall: float = 0.0  # measured

    def merged_looks(self) -> Task:
        """Its batches of one stage as one batch (their gaps after it): a look's strategies together."""
        stages: dict[str, Batch] = {}
        for batch in self.batches:
            merged = stages.setdefault(batch.stage, Batch(batch.stage, []))
            merged.jobs += batch.jobs
            merged.gap_after += batch.gap_after
        return Task(self.name, self.lead_in, list(stages.values()), self.wall)

    def critical_path(self) -> float:
        """Its wall on unlimited workers: the driver's seconds and each batch's longest training."""
        return self.lead_in + sum(max(b.jobs, default=0.0) + b.gap_after for b in self.batches)


def simulate(tasks: list[Task], workers: int, concurrent: int | None, overhead: float, stragglers: bool) -> float:
    """Wall seconds of `tasks` on `workers`: an event-driven list schedule, the longest ready training
    first, at most `concurrent` tasks started at a time (None: all), each batch after its predecessor."""
    slow = round(workers * STRAGGLER_SHARE) if stragglers else 0
    speed = [STRAGGLER_SLOWDOWN] * slow + [1.0] * (workers - slow)
    idle = sorted(range(workers), key=lambda w: speed[w])  # the fastest idle worker takes the next job
    events: list[tuple[float, int, str, int, int]] = []  # (time, order, kind, task, worker)
    ready: list[tuple[float, int, int]] = []  # (-seconds, order, task)
    left = [0] * len(tasks)  # trainings of the task's current batch not yet done
    batch_of = [-1] * len(tasks)
    waiting = list(range(len(tasks)))[::-1]
    counter, now, finished = 0, 0.0, 0

    def push(at: float, kind: str, task: int, worker: int = -1) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (at, counter, kind, task, worker))

    def start_task() -> None:
        if waiting:
            task = waiting.pop()
            push(now + tasks[task].lead_in, "release", task)

    for _ in range(len(tasks) if concurrent is None else min(concurrent, len(tasks))):
        start_task()
    while events:
        now, _, kind, task, worker = heapq.heappop(events)
        if kind == "done":
            idle.append(worker)
            idle.sort(key=lambda w: speed[w])
            left[task] -= 1
            if left[task] == 0:
                push(now + tasks[task].batches[batch_of[task]].gap_after, "release", task)
        elif kind == "release":
            batch_of[task] += 1
            if batch_of[task] == len(tasks[task].batches):
                finished += 1
                start_task()
            else:
                jobs = tasks[task].batches[batch_of[task]].jobs
                left[task] = len(jobs)
                for seconds in jobs:
                    counter += 1
                    heapq.heappush(ready, (-seconds, counter, task))
                if not jobs:
                    push(now, "done-empty", task)
        if kind == "done-empty":
            push(now + tasks[task].batches[batch_of[task]].gap_after, "release", task)
        while ready and idle:
            seconds, _, owner = heapq.heappop(ready)
            free = idle.pop(0)
            push(now + (-seconds + overhead) * speed[free], "done", owner, free)
    assert finished == len(tasks), "a task never finished: a batch without trainings lost its release"
    return now


def scaling_table(tasks: list[Task], workers: list[int], concurrent: int, overhead: float) -> pd.DataFrame:
    """Wall minutes per order and worker count, with the bounds no schedule beats."""
    merged = [task.merged_looks() for task in tasks]
    work = sum(seconds + overhead for task in tasks for batch in task.batches for seconds in batch.jobs)
    driver = [task.lead_in + sum(b.gap_after for b in task.batches) for task in tasks]
    orders = {
        f"today's order ({concurrent} tasks at a time, each strategy's first look a node)": lambda w: simulate(
            tasks, w, concurrent, overhead, False
        ),
        "all tasks at once": lambda w: simulate(tasks, w, None, overhead, False),
        "all tasks at once, a look's strategies together": lambda w: simulate(merged, w, None, overhead, False),
        f"the same, one worker in {round(1 / STRAGGLER_SHARE)} at 1/{STRAGGLER_SLOWDOWN:g} speed": lambda w: simulate(
            merged, w, None, overhead, True
        ),
        "bound: work / workers": lambda w: work / w,
        "bound: the longest task's critical path": lambda w: max(t.critical_path() for t in merged),
    }
    rows = [
        {"order": o, **{f"{w} workers (min)": round(wall(w) / 60, 1) for w in workers}} for o, wall in orders.items()
    ]
    table = pd.DataFrame(rows)
    table.attrs["work_minutes"] = work / 60
    table.attrs["driver_minutes"] = sum(driver) / 60
    return table


def read_suite(tracking_uri: str, suite_run: str | None, looks: list[int]) -> tuple[list[Task], dict]:
    """Each task of one `kedro suite` run as batches of its measured trainings (see the module's text)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(search_all_experiments=True, max_results=200_000)
    runs = runs.set_index("run_id")
    parent = runs.get("tags.mlflow.parentRunId")
    if suite_run is None:
        suites = runs[(runs.get("tags.orchestrator") == "kedro suite") & parent.isna()]
        if suites.empty:
            raise SystemExit(f"no `kedro suite` run in {tracking_uri}")
        suite_run = suites["start_time"].idxmax()
    suite = runs.loc[suite_run]
    children = runs[(parent == suite_run) & runs["tags.suite.task"].notna()]
    finished = children[children["status"] == "FINISHED"].sort_values("start_time")
    tasks = [_task_of(task_run, _descendants(runs, task_id), looks) for task_id, task_run in finished.iterrows()]
    ended = pd.notna(suite["end_time"])
    # a suite still running (or killed): its wall so far, to the last finished task's end
    until = suite["end_time"] if ended else finished["end_time"].max()
    about = {
        "suite_run": suite_run,
        "wall": (until - suite["start_time"]).total_seconds(),
        "whole": ended and len(finished) == len(children),
        "unfinished": sorted(children.loc[children["status"] != "FINISHED", "tags.suite.task"]),
        "concurrent": _number(suite.get("params.suite.concurrent_tasks"), default=2),
    }
    return tasks, about


def _number(value, default: int) -> int:
    found = pd.to_numeric(value, errors="coerce")
    return int(found) if pd.notna(found) else default


def _descendants(runs: pd.DataFrame, run_id: str) -> pd.DataFrame:
    parent = runs["tags.mlflow.parentRunId"]
    found, frontier = [], [run_id]
    while frontier:
        children = runs[parent.isin(frontier)]
        found.append(children)
        frontier = list(children.index)
    return pd.concat(found)


def _task_of(task_run: pd.Series, below: pd.DataFrame, looks: list[int]) -> Task:
    """A task's batches: its transfer strategies' first-look nodes and later looks, and the race."""
    trainings = below[below["tags.headstart.level"] == "training"].copy()
    strategy_runs = below[below["tags.headstart.level"] == "strategy"]
    compared = set(strategy_runs[strategy_runs["tags.role"].notna()]["tags.strategy"])
    seed = pd.to_numeric(trainings["tags.mlflow.runName"].str.extract(r" seed (\d+)")[0]).fillna(0)
    position = seed.rank(method="dense").astype(int) - 1  # the seeds in the order the looks take them
    look = position.map(lambda p: 1 + sum(p >= n for n in looks[:-1]))
    in_race = ~trainings["tags.strategy"].isin(compared)
    trainings["stage"] = ["race" if race else f"look {n}" for race, n in zip(in_race, look)]
    trainings["node"] = [
        stage if stage != "look 1" else f"look 1 {name}"
        for stage, name in zip(trainings["stage"], trainings["tags.strategy"])
    ]
    trainings["seconds"] = trainings["metrics.train_seconds"].fillna(0.0)
    batches, intervals = [], []
    for _, group in sorted(trainings.groupby("node"), key=lambda item: item[1]["start_time"].min()):
        batches.append(Batch(group["stage"].iloc[0], group["seconds"].tolist()))
        intervals.append((group["start_time"].min(), group["end_time"].max()))
    start, end = task_run["start_time"], task_run["end_time"]
    lead_in = (intervals[0][0] - start).total_seconds() if intervals else (end - start).total_seconds()
    for index, batch in enumerate(batches):
        following = intervals[index + 1][0] if index + 1 < len(batches) else end
        batch.gap_after = max(0.0, (following - intervals[index][1]).total_seconds())
    name = task_run.get("tags.suite.task") or task_run["tags.mlflow.runName"].split(":")[0]
    return Task(name, max(0.0, lead_in), batches, (end - start).total_seconds())


def scheduler_overhead(jobs: int = 40) -> float:
    """Median seconds an empty job spends going through a two-worker Dask LocalCluster and back."""
    from headstart.ml.cluster import ClusterWorkers

    pool = ClusterWorkers(local=2)
    try:
        pool.submit(len, ()).result()  # the workers' first import, not an overhead per training
        rounds = []
        for _ in range(jobs):
            started = time.perf_counter()
            pool.submit(len, ()).result()
            rounds.append(time.perf_counter() - started)
    finally:
        pool.close()
    return statistics.median(rounds)


def smoke_store(tracking_uri: str) -> None:
    """A toy suite in an MLflow store, tagged as `kedro suite` tags its runs: two tasks, each a lead-in,
    two strategies' first looks, a later look and a race (the check that this script still reads them)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.create_experiment("smoke")
    clock = 1_000_000

    def run(name, parent=None, seconds=1.0, **tags):
        nonlocal clock
        every = {"mlflow.parentRunId": parent} if parent else {}
        made = client.create_run(experiment, run_name=name, tags={**every, **tags}, start_time=clock)
        clock += int(seconds * 1000)
        return made.info.run_id

    suite = run("suite a, b", seconds=0, orchestrator="kedro suite")
    client.log_param(suite, "suite.concurrent_tasks", "2")
    for task in ("a", "b"):
        task_run = run(f"{task}: ingest+transfer+advise", suite, seconds=2, **{"suite.task": task})
        for strategy, seeds, seconds in (
            ("scratch", [0, 1, 2, 3], 3.0),
            ("finetune", [0, 1, 2], 1.0),
            ("race", [0], 2),
        ):
            node = run(strategy, task_run, seconds=0, **{"headstart.level": "strategy", "strategy": strategy})
            if strategy != "race":
                client.set_tag(node, "role", "transfer")
            for seed in seeds:
                training = run(f"{strategy} seed {seed}", node, seconds, **{"headstart.level": "training"})
                client.set_tag(training, "strategy", strategy)
                client.log_metric(training, "train_seconds", seconds)
                client.set_terminated(training, end_time=clock)
            client.set_terminated(node, end_time=clock)
        clock += 1000
        client.set_terminated(task_run, end_time=clock)
    client.set_terminated(suite, end_time=clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db", help="where the suite's runs are")
    parser.add_argument("--suite-run", help="the suite's parent run (default: the newest)")
    parser.add_argument("--looks", type=int, nargs="+", default=[3, 5, 10], help="the run's transfer.looks")
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--run-workers", type=int, default=2, help="the workers the measured run had")
    parser.add_argument("--overhead-jobs", type=int, default=40, help="empty jobs timed for the overhead")
    parser.add_argument("--smoke", action="store_true", help="a toy suite in a temporary store: seconds")
    args = parser.parse_args()
    if args.smoke:
        import tempfile

        folder = tempfile.mkdtemp()
        args.tracking_uri, args.overhead_jobs = f"sqlite:///{folder}/mlflow.db", 3
        smoke_store(args.tracking_uri)
    tasks, about = read_suite(args.tracking_uri, args.suite_run, args.looks)
    overhead = scheduler_overhead(args.overhead_jobs)
    measured_workers = args.run_workers
    trainings = sum(len(b.jobs) for t in tasks for b in t.batches)
    table = scaling_table(tasks, [measured_workers, *args.workers], about["concurrent"], overhead)
    print(
        f"{len(tasks)} tasks, {trainings} trainings: {table.attrs['work_minutes']:.1f} min of training on one worker, "
        f"{table.attrs['driver_minutes']:.1f} min of the drivers' own (an upper bound); the scheduler's overhead "
        f"{1000 * overhead:.1f} ms a training (median of {args.overhead_jobs} empty jobs, a 2-worker LocalCluster)"
    )
    modelled = simulate(tasks, measured_workers, about["concurrent"], overhead, False)
    span = "measured" if about["whole"] else "measured from its start to the last finished task's end"
    print(
        f"The model against the run: today's order on {measured_workers} workers {modelled / 60:.1f} min, "
        f"{span} {about['wall'] / 60:.1f} min (suite run {about['suite_run']})"
    )
    if about["unfinished"]:
        print(f"Not finished, left out: {', '.join(about['unfinished'])} (their trainings shared the workers)")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
