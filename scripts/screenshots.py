"""Screenshots of Kedro-Viz and of the MLflow UI's compare view, taken in headless Chromium.

Run from the project root after the default `kedro run`:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Needs Debian's Chromium (`apt-get install chromium`) and Kedro-Viz (`pip install -e ".[viz]"`).
Writes kedro_viz.png (the pipeline graph of the static `kedro viz build` site), mlflow_runs.png
(the experiment's runs) and mlflow_compare.png (the comparison's strategy runs side by side, each with
its row of the comparison: accuracy, gain over the best baseline with its interval, verdict, cost).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import mlflow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def screenshot(url: str, path: Path, size: str = "1600,1000", wait_ms: int = 20000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: apt-get install chromium")
    subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={path}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    print(f"{path}: {path.stat().st_size} bytes from {url}")


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer in {seconds} s")


def kedro_viz(out: Path) -> None:
    subprocess.run([sys.executable, "-m", "kedro", "viz", "build", "--include-previews"], check=True)
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="build")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        screenshot(f"http://127.0.0.1:{port}/", out / "kedro_viz.png")
    finally:
        server.shutdown()


def mlflow_ui(out: Path, experiment: str) -> None:
    store = f"sqlite:///{Path('mlruns/mlflow.db').resolve()}"
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list", order_by=["start_time DESC"])
    strategy_runs: dict[str, list] = {}
    for run in runs:
        if run.data.tags.get("headstart.level") == "strategy":  # one run per strategy, its summary on it
            strategy_runs.setdefault(run.data.tags["mlflow.parentRunId"], []).append(run)
    if not strategy_runs:
        sys.exit("no strategy runs in MLflow yet: run `kedro run` first")
    parent_id, children = max(strategy_runs.items(), key=lambda item: len(item[1]))  # the newest fullest run
    children = sorted(children, key=lambda r: r.data.metrics.get("gain_over_best_points", 0.0), reverse=True)
    parent = mlflow.get_run(parent_id)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/")
        base = f"http://127.0.0.1:{port}/#"
        screenshot(f"{base}/experiments/{parent.info.experiment_id}", out / "mlflow_runs.png")
        runs, experiments = json.dumps([r.info.run_id for r in children]), json.dumps([parent.info.experiment_id])
        query = f"runs={runs}&experiments={experiments}"
        screenshot(f"{base}/compare-runs?{query}", out / "mlflow_compare.png", size="1800,1400")
    finally:
        server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--experiment", default="headstart")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kedro_viz(out)
    mlflow_ui(out, args.experiment)


if __name__ == "__main__":
    main()
