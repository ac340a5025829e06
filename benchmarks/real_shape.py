"""A real user's shape: a 224-px RGB photo folder (10 classes, 80 images each) and a torchvision
resnet18 or a timm ViT from a local weights file, through `kedro run` as a user runs it.

Writes the folder and the weights file, then runs `kedro run --pipelines=ingest,pretrain,transfer`
in a scratch copy of the project (so the real data/ and mlruns/ are untouched) with one seed, one
tuning candidate and the strategies scratch, feature_svm, finetune_top and l2_sp (the classical
references ride along: they cost seconds), and prints their rows, the wall time and the seconds per
training. Offline, the weights file holds the architecture's seeded random initialisation (no
ImageNet weights can be had here): the figures are the cost at this shape, not a transfer gain.

    .venv/bin/python benchmarks/real_shape.py --model resnet18
    .venv/bin/python benchmarks/real_shape.py --model vit_tiny_patch16_224
    .venv/bin/python benchmarks/real_shape.py --model resnet18 --estimate-only   # the cost estimate alone
    .venv/bin/python benchmarks/real_shape.py --model resnet18 --plan --budget 60   # the default conf, planned

`--plan` keeps the default comparison (every strategy, the planned looks, the default source of printed
digits, whose classes are not the folder's) and gives it `--budget` minutes (runtime.time_budget_minutes):
it prints what the run said before training (the first look's estimate, what is not applicable, or the
refusal naming what to cut), what it then ran and cut, and the wall time.

`--estimate-only` stops after the transfer pipeline's `estimate_cost` node (`--to-nodes`) and prints its
table: the seconds it expects per training, from steps timed on this machine, before any training.

`--smoke` checks that the script still runs: the same run at 32 px, 3 classes × 20 images, 2 labels per
class and one epoch, in a temporary folder; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import safetensors.torch
import torch
import yaml
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top", "l2_sp"]
TRAINED = ["scratch", "finetune_top", "l2_sp"]  # the strategies with a training budget of their own


def write_photo_folder(root: Path, classes: int = 10, per_class: int = 80, size: int = 224, seed: int = 0) -> None:
    """Procedural 'photos': per class a grating of its own orientation and frequency under a colour
    cast, with random phase, contrast, brightness, a random occluding disc and sensor noise."""
    generator = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    for label in range(classes):
        folder = root / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        angle, frequency = math.pi * label / classes, 4 + 2 * (label % 4)
        cast = generator.uniform(0.4, 1.0, 3)
        for index in range(per_class):
            jitter = angle + generator.normal(0, 0.15)
            phase = generator.uniform(0, 2 * math.pi)
            wave = np.sin(2 * math.pi * frequency * (x * math.cos(jitter) + y * math.sin(jitter)) + phase)
            image = 0.5 + generator.uniform(0.2, 0.5) * wave[..., None] * cast + generator.uniform(-0.15, 0.15)
            cx, cy, radius = generator.uniform(0.1, 0.9, 2).tolist() + [generator.uniform(0.05, 0.25)]
            disc = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
            image[disc] = generator.uniform(0, 1, 3)
            image = np.clip(image + generator.normal(0, 0.05, image.shape), 0, 1)
            Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{index:03d}.jpg", quality=90)


def write_weights(model: str, path: Path) -> str:
    """The architecture's seeded initialisation as the library's own weights file; returns the library."""
    torch.manual_seed(0)
    if model.startswith("vit_") and "patch" in model:
        import timm

        net = timm.create_model(model, pretrained=False)
        safetensors.torch.save_file(net.state_dict(), path.with_suffix(".safetensors"))
        return "timm"
    import torchvision

    torch.save(torchvision.models.get_model(model, weights=None).state_dict(), path.with_suffix(".pth"))
    return "torchvision"


def keep_strategies(project: Path, names: list[str]) -> None:
    """Only `names` in the scratch copy's transfer conf (and in its leave_out)."""
    transfer_conf = project / "conf/base/parameters_transfer.yml"
    transfer = yaml.safe_load(transfer_conf.read_text())
    transfer["transfer"]["strategies"] = {s: transfer["transfer"]["strategies"][s] for s in names}
    transfer["transfer"]["leave_out"] = [s for s in transfer["transfer"].get("leave_out") or [] if s in names]
    transfer_conf.write_text(yaml.safe_dump(transfer, sort_keys=False))


def prepare_project(
    workdir: Path, model: str, plan_budget: float | None = None, smoke: bool = False
) -> tuple[Path, Path]:
    if workdir.exists():
        shutil.rmtree(workdir)
    project = workdir / "project"
    project.mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, project / name)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(PROJECT_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    photos = project / "data/01_raw/photos"
    size = 32 if smoke else 224
    if smoke:
        write_photo_folder(photos, classes=3, per_class=20, size=size)
    else:
        write_photo_folder(photos)
    weights = project / "data/01_raw" / model
    library = write_weights(model, weights)
    weights_file = next(weights.parent.glob(f"{model}.*"))
    if plan_budget is None:
        keep_strategies(project, STRATEGIES)
    ingest_conf = project / "conf/base/parameters_ingest.yml"  # replaced, not merged: the base's source keys differ
    ingest = yaml.safe_load(ingest_conf.read_text())
    folder = {"kind": "image_folder", "root": "data/01_raw/photos"}
    ingest["ingest"].update(image={"size": size, "channels": 3}, target=folder)
    if plan_budget is None:
        ingest["ingest"]["source"] = dict(folder)
    ingest_conf.write_text(yaml.safe_dump(ingest, sort_keys=False))
    local = {
        "pretrain": {
            "init": "checkpoint",
            "checkpoint": str(weights_file.relative_to(project)),
            "architecture": {"library": library, "name": model},
        },
        "transfer": {
            "seeds": [0],
            "lr_scales": [1.0],
            "strategies": {"l2_sp": {"adaptation": {"weight": [0.01]}}},
        },
        "runtime": {"progress": False},
    }
    if smoke:  # the backbone at the folder's 32 px (not its own 224), one epoch of one step each
        local["pretrain"]["architecture"]["input_size"] = size
        local["ingest"] = {"split": {"labels_per_class": 2}}
        one_step = {"epochs": 1, "min_epochs": 0, "min_batches_per_epoch": 1}
        strategies = {s: {"lr_scales": [1.0], "training": dict(one_step)} for s in TRAINED}
        strategies["l2_sp"]["adaptation"] = {"weight": [0.01]}
        local["transfer"] |= {"looks": None, "strategies": strategies}
        local["runtime"] |= {"workers": 1, "time_budget_minutes": None}
    if plan_budget is not None:  # the default comparison, as a user first runs it, with this budget
        local = {"pretrain": local["pretrain"], "runtime": {"progress": False, "time_budget_minutes": plan_budget}}
    (project / "conf/local/parameters.yml").parent.mkdir(parents=True, exist_ok=True)
    (project / "conf/local/parameters.yml").write_text(yaml.safe_dump(local, sort_keys=False))
    return project, weights_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="default: /tmp/headstart_real_shape (smoke: a temp dir)"
    )
    parser.add_argument("--estimate-only", action="store_true", help="stop after the cost estimate; print it")
    parser.add_argument("--plan", action="store_true", help="the default comparison under --budget minutes")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--smoke", action="store_true", help="the run at 32 px on 60 images: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
            del os.environ[name]  # MLflow goes to the scratch copy's mlruns/ too
    if args.workdir is None and args.smoke:
        with tempfile.TemporaryDirectory() as scratch:
            measure(args, Path(scratch))
    else:
        measure(args, args.workdir or Path("/tmp/headstart_real_shape"))


def measure(args: argparse.Namespace, workdir: Path) -> None:
    plan_budget = args.budget if args.plan else None
    project, weights_file = prepare_project(workdir / args.model, args.model, plan_budget, args.smoke)
    if args.plan:
        plan(project, args.model)
        return
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--pipelines=ingest,pretrain,transfer",
            *(["--to-nodes=estimate_cost"] if args.estimate_only else []),
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    (project / "kedro_run.log").write_text(result.stdout + result.stderr)
    if result.returncode:
        sys.exit(f"kedro run failed ({project / 'kedro_run.log'}):\n{result.stderr[-3000:]}")
    estimate = pd.read_csv(sorted(project.glob("data/08_reporting/transfer_cost.csv/*/*.csv"))[-1])
    print(f"model: {args.model}; cost estimate before training (data/08_reporting/transfer_cost.csv):")
    print(estimate.to_markdown(index=False, floatfmt=".4g"))
    networks = estimate[estimate["strategy"].isin(["scratch", "feature_svm", "finetune_top", "l2_sp"])]
    print(
        f"estimated: {estimate['expected_seconds'].sum():.1f} s in all; seconds per training (mean of the four): "
        f"{networks['seconds_per_training'].mean():.1f}"
    )
    if args.estimate_only:
        print(f"\ningest + pretrain + estimate wall time: {wall:.1f} s")
        return
    comparison = pd.read_csv(sorted(project.glob("data/08_reporting/transfer_comparison.csv/*/*.csv"))[-1])
    columns = ["strategy", "accuracy", "gain_points", "train_seconds", "images_seen", "trainable_parameters"]
    shape = "32-px RGB folder, 3 classes × 20 images" if args.smoke else "224-px RGB folder, 10 classes × 80 images"
    print(f"model: {args.model} from {weights_file.name}; {shape}; 1 seed")
    print(comparison[[c for c in columns if c in comparison]].to_markdown(index=False, floatfmt=".3f"))
    trained = comparison[comparison["strategy"].isin(["scratch", "feature_svm", "finetune_top", "l2_sp"])]
    print(
        f"\nkedro run wall time: {wall:.1f} s; seconds per training (mean of the four): "
        f"{trained['train_seconds'].mean():.1f}"
    )


def plan(project: Path, model: str) -> None:
    """The default comparison at this shape under the budget: what it said before training, what it ran."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipelines=ingest,pretrain,transfer"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    log = result.stdout + result.stderr
    (project / "kedro_run.log").write_text(log)
    cost = sorted(project.glob("data/08_reporting/transfer_cost.json/*/*.json"))
    print(f"model: {model}; 224-px RGB folder, 10 classes × 80 images; the default comparison")
    if cost:
        said = json.loads(cost[-1].read_text())
        print(said["text"])
        print(f"not applicable: {said.get('not_applicable')}")
    if result.returncode:
        print("refused or failed:\n" + "\n".join(line for line in result.stderr.splitlines() if line.strip())[-3000:])
    else:
        looks = json.loads(sorted(project.glob("data/08_reporting/transfer_looks.json/*/*.json"))[-1].read_text())
        print(f"looks: {looks['looks']}\nseeds trained: {looks['seeds_trained']}")
    print(f"kedro run wall time: {wall:.1f} s (exit {result.returncode})")


if __name__ == "__main__":
    main()
