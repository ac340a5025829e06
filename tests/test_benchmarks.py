"""Every script under benchmarks/ runs in its smoke mode (`--smoke`: a tiny shape, seconds, nothing written
outside a temporary folder) and prints its result: a script the code has moved away from fails here, not
when someone next measures with it."""

import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, kedro_environment

SCRIPTS = sorted(path.name for path in (PROJECT_ROOT / "benchmarks").glob("*.py"))
# A line of each script's result, figures included; a new script adds its own.
RESULTS = {
    "classical_baselines.py": r"^pixels_logistic +0\.\d+$",
    "default_run_stages.py": r"^\| ingest \(nodes\) +\| +[\d.]+ \|",
    "distributed_training.py": r"^\| +2 \| +[\d.]+ \| +\d+ \|",
    "grid_cost.py": r"^\| default +\| before: full grid[^|]*\| +[\d.]+ \|",
    "ood_scores.py": r"^\| letters +\| knn +\| +[\d.]+ \| +[\d.]+ \|",
    "real_shape.py": r"^\| scratch +\| +[\d.]+ \|",
    "served_env.py": r"^SAME ANSWERS$",
    "stacked_seeds.py": r"^seeds keeping the same epoch: \d of 2",
    "suite_scaling.py": r"^\| today's order \(2 tasks at a time[^|]*(\| +[\d.]+ +){4}\|$",
    "step_time.py": r"^\| 1 × \d+ +\| channels-last \| bf16 +\| +[\d.]+ \|",
    "training_throughput.py": r"^\| smoke +\| headstart fit +\| +[\d.]+ \|",
}


@pytest.mark.parametrize("script", SCRIPTS)  # not slow, whatever they cost: CI runs every benchmark's smoke
def test_a_benchmark_runs_in_its_smoke_mode_and_prints_its_result(script, tmp_path):
    assert script in RESULTS, f"say in RESULTS which line of its output is {script}'s result"
    (tmp_path / "tmp").mkdir()
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / script), "--smoke"],
        cwd=tmp_path,  # anything a script writes relative to where it runs stays here
        env=kedro_environment(TMPDIR=str(tmp_path / "tmp")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(RESULTS[script], result.stdout, re.MULTILINE), result.stdout[-3000:]
