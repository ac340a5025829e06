"""A suite's wall time on 8, 32 and 128 workers, simulated from its measured per-training costs.

The costs are the ones each task's run measured before training (`transfer_cost.csv`: per strategy,
its first look's trainings and the seconds of one, from steps timed on that machine, times the share
of a full grid its race trains). Each training is a job for one worker of one torch thread
(headstart.ml.workers, or a Dask cluster's: runtime.cluster). The simulation lays the jobs on W
workers, the longest first whenever a worker is free (greedy list scheduling, within 4/3 of the best
schedule), in three orders:

- strategies in turn: as `kedro run` runs today, one strategy's node at a time, its trainings (grid ×
  seeds) at once; a node ends when its last training does, so workers idle at every node's end;
- a task's trainings at once: every strategy of a task handed out together, the tasks in turn;
- the suite's trainings at once: every training of every task handed out together.

Against them, the work over W (no schedule beats it) and the longest training (nor that). Left out:
the race's rungs (barriers inside a strategy), the later looks (planned from the first look's
results), ingest, pretraining and the driver's evaluation; stacked seeds count as one training.

Full mode reads the latest `transfer_cost.csv` of each task under a stored-data folder (`kedro
suite` writes one per task, `<data>/suite/<task>/08_reporting/`; a plain `kedro run` writes
`<data>/08_reporting/`). `--smoke` checks that the script still runs: it measures a toy comparison's
costs here (a tiny network on 12 images, four strategies) and simulates a suite of 20 such tasks; its
figures mean nothing.

    .venv/bin/python benchmarks/suite_scaling.py --data data --workers 8 32 128
    .venv/bin/python benchmarks/suite_scaling.py --smoke
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from pathlib import Path

import pandas as pd

ORDERS = ("strategies in turn (today)", "a task's trainings at once", "the suite's trainings at once")


def makespan(jobs: list[float], workers: int) -> float:
    """The wall seconds of `jobs` on `workers`, the longest first on whichever worker is free first."""
    free = [0.0] * min(workers, max(1, len(jobs)))
    for seconds in sorted(jobs, reverse=True):
        heapq.heapreplace(free, free[0] + seconds)
    return max(free)


def task_jobs(table: pd.DataFrame) -> dict[str, list[float]]:
    """Per strategy, the seconds of each of its first look's trainings (a raced grid's mean training)."""
    raced = table["raced_share"].fillna(1.0) if "raced_share" in table else 1.0
    seconds = (table["seconds_per_training"].fillna(0.0) * raced).tolist()
    return {
        name: [each] * int(count) for name, count, each in zip(table["strategy"], table["trainings"], seconds) if count
    }


def simulate(tasks: dict[str, dict[str, list[float]]], workers: list[int]) -> pd.DataFrame:
    """Wall minutes per order and worker count, with the bounds no schedule beats."""
    every = [s for strategies in tasks.values() for jobs in strategies.values() for s in jobs]
    walls = {
        ORDERS[0]: lambda w: sum(makespan(j, w) for strategies in tasks.values() for j in strategies.values()),
        ORDERS[1]: lambda w: sum(makespan([s for j in st.values() for s in j], w) for st in tasks.values()),
        ORDERS[2]: lambda w: makespan(every, w),
        "bound: work / workers, longest training": lambda w: max(sum(every) / w, max(every, default=0.0)),
    }
    rows = [
        {"order": order, **{f"{w} workers (min)": round(wall(w) / 60, 2) for w in workers}}
        for order, wall in walls.items()
    ]
    return pd.DataFrame(rows)


def read_costs(data: Path) -> dict[str, pd.DataFrame]:
    """The latest cost table of each task under a stored-data folder (the suite's, else the run's)."""
    found = {path.parents[2].name: path for path in sorted(data.glob("suite/*/08_reporting/transfer_cost.csv"))}
    found = found or ({"the run": data / "08_reporting/transfer_cost.csv"} if data.exists() else {})
    tables = {}
    for task, folder in found.items():
        versions = sorted(folder.glob("*/transfer_cost.csv"))
        if versions:
            tables[task] = pd.read_csv(versions[-1])
    return tables


def smoke_costs() -> pd.DataFrame:
    """A toy comparison's cost table, measured here by the transfer pipeline's own estimate node."""
    import tempfile

    import torch

    from headstart.ml.data.images import LabelledImages
    from headstart.ml.models import build_model
    from headstart.ml.models.stored import StoredModel
    from headstart.params import RuntimeParams, TransferParams
    from headstart.pipelines.transfer.nodes import estimate_cost

    def labelled(count: int, seed: int) -> LabelledImages:
        generator = torch.Generator().manual_seed(seed)
        labels = torch.arange(count) % 3
        images = torch.randint(0, 60, (count, 1, 8, 8), dtype=torch.uint8, generator=generator)
        images[torch.arange(count), 0, labels * 2, :] = 250
        return LabelledImages(images, {"digit": labels}, {"digit": ["a", "b", "c"]})

    small = {"epochs": 2, "batch_size": 8, "min_batches_per_epoch": 3}
    source = {"name": "small_cnn", "in_channels": 1, "num_classes": 3, "widths": [4, 8]}
    transfer = TransferParams.model_validate(
        {
            "seeds": [0, 1, 2],
            "looks": [3],
            "lr_scales": [1.0],
            "strategies": {
                "scratch": {"copy_blocks": 0, "lr_scales": [0.3, 1.0, 3.0], "training": small},
                "pixels_logistic": {"model": "pixels", "procedure": "linear_classifier", "copy_blocks": 0},
                "pixels_knn": {"model": "pixels", "procedure": "nearest_neighbours", "copy_blocks": 0},
                "finetune_top": {"freeze_blocks": 1, "training": small},
            },
        }
    )
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as checkpoints:
        runtime = RuntimeParams(progress=False, checkpoint_dir=checkpoints, workers=1, seeds_together=1)
        table, _ = estimate_cost(
            {"source": StoredModel.from_module(build_model(source), source)},
            labelled(12, 1),
            labelled(12, 2),
            labelled(12, 3),
            transfer,
            runtime,
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"), help="the stored-data folder of the runs")
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        table = smoke_costs()
        tables = {f"toy task {index}": table for index in range(20)}
    else:
        tables = read_costs(args.data)
        if not tables:
            sys.exit(f"no transfer_cost.csv under {args.data}: run `kedro suite` (or `kedro run`) first")
    tasks = {task: task_jobs(table) for task, table in tables.items()}
    trainings = sum(len(jobs) for strategies in tasks.values() for jobs in strategies.values())
    strategies = sum(len(strategies) for strategies in tasks.values())
    work = sum(s for strategies in tasks.values() for jobs in strategies.values() for s in jobs)
    print(f"{len(tasks)} tasks, {strategies} strategy nodes, {trainings} trainings, {work / 60:.2f} min on one worker")
    result = simulate(tasks, args.workers)
    print(result.to_markdown(index=False))
    best = result.set_index("order").loc[ORDERS[2]]
    today = result.set_index("order").loc[ORDERS[0]]
    for column in result.columns[1:]:
        gain = today[column] / best[column] if best[column] else math.nan
        print(f"{column.split()[0]} workers: the suite at once is {gain:.1f}× faster than strategies in turn")


if __name__ == "__main__":
    main()
