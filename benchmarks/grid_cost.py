"""What the transfer comparison's grid costs, before and after the cost work, in one run.

For each shape it prepares a scratch copy of the project (the real data/ and mlruns/ stay as they
are), runs ingest and pretrain once, then `kedro run --pipelines=transfer` once per configuration:

- before: every candidate of every grid trained to the end, frozen blocks forwarded at every step;
- + cache: frozen-prefix features computed once (`training.frozen_feature_views: 8`);
- + racing: successive halving over each grid as well (`transfer.racing_eta: 3`);
- + seeds trained together: a candidate's seeds trained as one stacked model (`runtime.seeds_together: 10`);
- ten seeds, the default conf: caching, racing and `seeds_together: null` (10 on CUDA, 1 on the CPU, where
  a stack was measured slower) with ten seeds (default shape only), against the first row's three:
  today's three-seed run and the ten-seed run, measured back to back.

It prints per configuration the wall time of the transfer run, the trainings, and the images pushed
through a network: the training steps' images over the whole grid (cut candidates' included) plus
the images through frozen prefixes when their features are cached.

Shapes: `default` is the default comparison (28-px digits, small_cnn, every strategy, the seeds of
--seeds); `photos` is a 224-px RGB folder (10 classes × 80 images) with a torchvision resnet18 from a
local weights file, where scratch, feature_svm, finetune_top and l2_sp (with the classical references)
stand for the grid, one seed, at a budget of --photo-epochs epochs so that it fits a CPU session.

`--smoke` checks that the script still runs: the first row alone, on the default shape shrunk (200 source
images, 2 labels per class, a narrow network, one epoch, one seed, the references beside scratch and
finetune_top), in a temporary folder; its figures mean nothing.

    .venv/bin/python benchmarks/grid_cost.py --shapes default photos
    .venv/bin/python benchmarks/grid_cost.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_shape import keep_strategies, write_photo_folder, write_weights  # noqa: E402

CONFIGURATIONS = {
    "before: full grid, uncached, seed by seed": {"racing_eta": None, "views": None, "together": 1},
    "+ frozen-prefix cache (1)": {"racing_eta": None, "views": 8, "together": 1},
    "+ successive halving (1, 2)": {"racing_eta": 3, "views": 8, "together": 1},
    "+ seeds trained together (1, 2, 3)": {"racing_eta": 3, "views": 8, "together": 10, "stacks": True},
    "ten seeds, the default conf": {"racing_eta": 3, "views": 8, "together": None, "seeds": 10},
}
PHOTO_STRATEGIES = ["scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top", "l2_sp"]
SMOKE_STRATEGIES = ["scratch", "pixels_logistic", "pixels_knn", "finetune_top"]


def copy_project(workdir: Path) -> Path:
    if workdir.exists():
        shutil.rmtree(workdir)
    project = workdir / "project"
    project.mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        if (PROJECT_ROOT / name).exists():
            shutil.copy(PROJECT_ROOT / name, project / name)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(PROJECT_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (project / "conf/local").mkdir(parents=True, exist_ok=True)
    return project


def prepare_smoke(project: Path) -> dict:
    """The default shape shrunk to seconds a run; returns the local overrides."""
    keep_strategies(project, SMOKE_STRATEGIES)
    one_epoch = {"lr_scales": [1.0], "training": {"epochs": 1, "min_epochs": 0}}
    return {
        "ingest": {"source": {"count": 200}, "split": {"labels_per_class": 2}},
        "pretrain": {"architecture": {"widths": [8, 16, 16]}, "training": {"epochs": 1}},
        "transfer": {
            "lr_scales": [1.0],
            "looks": None,
            "strategies": {name: json.loads(json.dumps(one_epoch)) for name in ("scratch", "finetune_top")},
        },
        "runtime": {"workers": 1, "time_budget_minutes": None},
    }


def prepare_photos(project: Path, epochs: int) -> dict:
    """The 224-px folder and resnet18 weights, the subset of strategies; returns the local overrides."""
    write_photo_folder(project / "data/01_raw/photos")
    library = write_weights("resnet18", project / "data/01_raw/resnet18")
    weights = next((project / "data/01_raw").glob("resnet18.*"))
    keep_strategies(project, PHOTO_STRATEGIES)
    ingest_conf = project / "conf/base/parameters_ingest.yml"
    ingest = yaml.safe_load(ingest_conf.read_text())
    ingest["ingest"].update(
        image={"size": 224, "channels": 3},
        source={"kind": "image_folder", "root": "data/01_raw/photos"},
        target={"kind": "image_folder", "root": "data/01_raw/photos"},
    )
    ingest_conf.write_text(yaml.safe_dump(ingest, sort_keys=False))
    budget = {"epochs": epochs, "min_epochs": 0}
    return {
        "pretrain": {
            "init": "checkpoint",
            "checkpoint": str(weights.relative_to(project)),
            "architecture": {"library": library, "name": "resnet18"},
        },
        "transfer": {"strategies": {s: {"training": budget} for s in ("scratch", "finetune_top", "l2_sp")}},
    }


def strategy_trainings(project: Path) -> dict[str, dict]:
    params = yaml.safe_load((project / "conf/base/parameters_transfer.yml").read_text())["transfer"]["strategies"]
    return {name: spec or {} for name, spec in params.items()}


def local_overrides(
    project: Path, base: dict, seeds: list[int], racing_eta: int | None, views: int | None, together: int | None
) -> dict:
    strategies: dict[str, dict] = json.loads(json.dumps(base.get("transfer", {}).get("strategies", {})))
    for name, spec in strategy_trainings(project).items():
        entry = strategies.setdefault(name, {})
        for phase in ("training", "probe"):
            if phase in spec or phase == "training":
                entry.setdefault(phase, {})["frozen_feature_views"] = views
    return {
        **base,
        "transfer": {**base.get("transfer", {}), "seeds": seeds, "racing_eta": racing_eta, "strategies": strategies},
        "runtime": {**base.get("runtime", {}), "progress": False, "seeds_together": together},
    }


def kedro(project: Path, pipelines: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", f"--pipelines={pipelines}"], cwd=project, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    (project / f"kedro_{pipelines}.log").write_text(result.stdout + result.stderr)
    if result.returncode:
        sys.exit(f"kedro run --pipelines={pipelines} failed in {project}:\n{result.stderr[-3000:]}")
    return wall


def measured_cost(project: Path) -> tuple[int, int, int]:
    """Trainings, images through the trained networks over the whole grids, images through frozen prefixes."""
    trainings = trained = prefixes = 0
    for folder in project.glob("data/08_reporting/*/test_evaluation.json"):
        evaluation = json.loads(sorted(folder.glob("*/test_evaluation.json"))[-1].read_text())
        tuning = evaluation.get("tuning") or {}
        trained += tuning.get("grid_images_seen") or 0
        prefixes += tuning.get("prefix_images") or 0
        trainings += len(evaluation["seeds"])
    return trainings, trained, prefixes


def run_shape(
    shape: str, workdir: Path, seeds: list[int], photo_epochs: int, configurations: list[str], smoke: bool = False
) -> list[dict]:
    project = copy_project(workdir / shape)
    base = prepare_photos(project, photo_epochs) if shape == "photos" else prepare_smoke(project) if smoke else {}
    runtime = {**base.get("runtime", {}), "progress": False}
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump({**base, "runtime": runtime}))
    kedro(project, "ingest,pretrain")
    rows = []
    for name, settings in CONFIGURATIONS.items():
        if name not in configurations:
            continue
        if ("seeds" in settings or "stacks" in settings) and shape != "default":
            continue  # the photos shape stands for the grid at one seed: nothing to stack
        run_seeds = list(range(settings["seeds"])) if "seeds" in settings else seeds
        overrides = local_overrides(
            project, base, run_seeds, settings["racing_eta"], settings["views"], settings["together"]
        )
        (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(overrides, sort_keys=False))
        for old in project.glob("data/08_reporting/*/test_evaluation.json"):
            shutil.rmtree(old)
        wall = kedro(project, "transfer")
        _, trained, prefixes = measured_cost(project)
        comparison = pd.read_csv(sorted(project.glob("data/08_reporting/transfer_comparison.csv/*/*.csv"))[-1])
        rows.append(
            {
                "shape": shape,
                "configuration": name,
                "transfer wall s": round(wall, 1),
                "images trained": trained,
                "images through cached prefixes": prefixes,
                "images in all": trained + prefixes,
                "mean test accuracy": round(float(comparison["accuracy"].mean()), 4),
            }
        )
        print(pd.DataFrame(rows[-1:]).to_markdown(index=False), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["default", "photos"], choices=["default", "photos"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the default shape (the photos shape: one)")
    parser.add_argument("--photo-epochs", type=int, default=9)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="default: /tmp/headstart_grid_cost (smoke: a temp dir)"
    )
    parser.add_argument(
        "--configurations",
        nargs="+",
        type=int,
        default=list(range(len(CONFIGURATIONS))),
        help="which rows to run, by position: " + "; ".join(f"{i}: {n}" for i, n in enumerate(CONFIGURATIONS)),
    )
    parser.add_argument("--smoke", action="store_true", help="the first row on a tiny default shape: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.shapes, args.seeds, args.configurations = ["default"], 1, [0]
        for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
            del os.environ[name]  # MLflow goes to the scratch copy's mlruns/ too
    if args.workdir is None and args.smoke:
        with tempfile.TemporaryDirectory() as scratch:
            compare(args, Path(scratch))
    else:
        compare(args, args.workdir or Path("/tmp/headstart_grid_cost"))


def compare(args: argparse.Namespace, workdir: Path) -> None:
    chosen = [name for i, name in enumerate(CONFIGURATIONS) if i in args.configurations]
    rows = []
    for shape in args.shapes:
        seeds = list(range(args.seeds)) if shape == "default" else [0]
        rows += run_shape(shape, workdir, seeds, args.photo_epochs, chosen, args.smoke)
    table = pd.DataFrame(rows)
    for _shape, group in table.groupby("shape", sort=False):
        before = group.iloc[0]
        table.loc[group.index, "wall ×"] = (before["transfer wall s"] / group["transfer wall s"]).round(2)
        table.loc[group.index, "images ×"] = (before["images in all"] / group["images in all"]).round(2)
    print("\n" + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
