"""The default `kedro run`'s seconds by stage, and Kedro + MLflow's fixed overhead as a share of it.

Runs the pipelines in this project through a KedroSession, as `kedro run` does (same hooks, catalog,
MLflow tracking), timing every node with one more hook. A stage's seconds are its nodes' seconds;
the overhead is the wall time minus every node's: session start-up, loading and saving catalog data
sets and MLflow logging (parameters, metrics, artifacts, child runs). It writes new versions like
any run; point MLFLOW_TRACKING_URI elsewhere to keep them out of mlruns/.

    .venv/bin/python benchmarks/default_run_stages.py
    .venv/bin/python benchmarks/default_run_stages.py --pipelines ingest pretrain transfer
    .venv/bin/python benchmarks/default_run_stages.py --retrain   # as a first run: the source model trained too
    .venv/bin/python benchmarks/default_run_stages.py --smoke     # ingest on conf/test, in a scratch copy

`--smoke` checks that the script still runs, in seconds: the ingest stage alone on the tiny conf/test, in a
scratch copy of the project (MLflow in the copy too), so this project's data/ and mlruns/ stay as they are.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from kedro.framework.hooks import hook_impl


class NodeTimer:
    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node) -> None:
        self.started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        self.seconds[node.name] = time.perf_counter() - self.started[node.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", nargs="+", default=None, help="default: the default run's")
    parser.add_argument("--retrain", action="store_true", help="pretrain anew, as a first run does")
    parser.add_argument("--smoke", action="store_true", help="ingest on conf/test in a scratch copy: checks it runs")
    args = parser.parse_args()
    if not args.smoke:
        measure(Path.cwd(), args.pipelines, args.retrain)
        return
    from grid_cost import copy_project

    for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
        del os.environ[name]  # MLflow too goes to the scratch copy
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch))
        os.chdir(project)  # as `kedro run` runs: MLflow's artifact root is relative to the working directory
        try:
            measure(project, ["ingest"], retrain=False, env="test")
        finally:
            os.chdir(here)


def measure(project: Path, pipeline_names: list[str] | None, retrain: bool, env: str | None = None) -> None:
    started = time.perf_counter()
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from headstart.pipeline_registry import DEFAULT

    bootstrap_project(project)
    stages = pipeline_names or list(DEFAULT)
    timer = NodeTimer()
    params = {"runtime": {"progress": False}}  # as `--params=runtime.progress=false`
    if retrain:
        params["pretrain"] = {"retrain": True}
    with KedroSession.create(project_path=project, env=env, runtime_params=params) as session:
        session._hook_manager.register(timer)  # one more hook beside settings.HOOKS
        session.run(pipeline_names=stages)
    wall = time.perf_counter() - started

    stage_of = {node.name: stage for stage in stages for node in pipelines[stage].nodes}
    by_stage: dict[str, float] = defaultdict(float)
    for name, seconds in timer.seconds.items():
        by_stage[stage_of.get(name, "other")] += seconds
    nodes = sum(by_stage.values())
    print(f"`kedro run --pipelines={','.join(stages)}{f' --env {env}' if env else ''}` in {project}: {wall:.1f} s wall")
    print(f"| {'stage':<40} | {'seconds':>8} | {'share':>6} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 8}|")
    for stage, seconds in by_stage.items():
        print(f"| {stage + ' (nodes)':<40} | {seconds:>8.1f} | {seconds / wall:>6.1%} |")
    overhead = wall - nodes
    print(f"| {'Kedro + MLflow (start-up, I/O, logging)':<40} | {overhead:>8.1f} | {overhead / wall:>6.1%} |")
    print(f"| {'total':<40} | {wall:>8.1f} | {1:>6.0%} |")


if __name__ == "__main__":
    main()
