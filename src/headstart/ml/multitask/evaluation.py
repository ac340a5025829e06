"""A multi-task method's trained networks as stored models, evaluated on the test split: per-task
metrics, what they cost, one child-run record per method × seed, and the validation curves."""

from __future__ import annotations

import time

import pandas as pd
import torch
from torch import nn

from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.multitask.objective import evaluate_multitask
from headstart.ml.multitask.training import TrainedNetwork
from headstart.ml.run_records import MULTITASK_METRICS, multitask_run
from headstart.ml.training import resolve_device, scale_images


def stored_networks(method: str, method_params: dict, networks: list[TrainedNetwork]) -> dict[str, StoredModel]:
    """A method's trained networks as stored models, `<method>-seed<s>-<part>` each (part: `all`, or the
    task of a single-task network), their info naming the method and its parameters."""
    stored = {}
    for network in networks:
        info = {"method": method, "method_params": method_params, **network.info}
        stored[f"{method}-seed{info['seed']}-{info['part']}"] = StoredModel.from_module(
            network.model, network.config, info
        )
    return stored


def inference_seconds(models: list[nn.Module], images: torch.Tensor, device: torch.device) -> float:
    """Seconds to predict every task for `images` with `models` (all single-task networks, or one)."""
    started = time.perf_counter()
    with torch.no_grad():
        for model in models:
            model.eval()
            for start in range(0, len(images), 512):
                model(scale_images(images[start : start + 512].to(device)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def merged_history(parts: list[StoredModel]) -> list[dict]:
    """One record per epoch over a method × seed's networks: a single-task network's metrics get its
    task as a suffix (`validation_accuracy_left`), so their curves sit side by side in one run."""
    history: dict[int, dict] = {}
    for stored in parts:
        suffix = "" if stored.info["part"] == "all" else f"_{stored.info['part']}"
        for record in stored.info["history"]:
            entry = history.setdefault(record["epoch"], {"epoch": record["epoch"]})
            entry.update(
                {
                    f"{k}{suffix}" if suffix and k != "epoch" and not k.endswith(suffix) else k: v
                    for k, v in record.items()
                }
            )
    return [history[epoch] for epoch in sorted(history)]


def evaluate_methods(
    models: dict[str, StoredModel], test: LabelledImages, device: str
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (method, seed, task, test metrics, cost) and one child-run record per method × seed. Cost:
    the parameters and training seconds of the method's networks, and their seconds to predict `test`."""
    resolved = resolve_device(device)
    grouped: dict[tuple[str, int], list[StoredModel]] = {}
    for stored in models.values():
        grouped.setdefault((stored.info["method"], stored.info["seed"]), []).append(stored)
    rows, runs = [], []
    for (method, seed), parts in grouped.items():
        built = [stored.build().to(resolved) for stored in parts]
        cost = {
            "parameters": sum(p.numel() for m in built for p in m.parameters()),
            "train_seconds": sum(stored.info["train_seconds"] for stored in parts),
            # one epoch of all the method's networks: with the same data and batch size for every
            # method, its cost per step relative to another method's
            "epoch_seconds": sum(
                stored.info["train_seconds"] / max(len(stored.info["history"]), 1) for stored in parts
            ),
            "inference_seconds": inference_seconds(built, test.images, resolved),
        }
        metrics = {}
        for model in built:
            metrics.update(evaluate_multitask(model, test.images, {t: test.labels[t] for t in model.tasks}))
        tuned = parts[0].info["method_params"].get("tuned", {})
        for task, measured in metrics.items():
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "task": task,
                    **{k: measured[k] for k in MULTITASK_METRICS},
                    **cost,
                    "tuned": f"{task}: {tuned[task]}" if task in tuned else tuned.get("all", ""),
                }
            )
        runs.append(multitask_run(method, seed, parts[0].info["method_params"], merged_history(parts), metrics, cost))
    return pd.DataFrame(rows), runs


def validation_curves(models: dict[str, StoredModel]) -> pd.DataFrame:
    """Mean validation accuracy per method and epoch over its seeds (and a single-task method's
    networks, each its own task's): whether the budget let training plateau."""
    rows = [
        {
            "method": stored.info["method"],
            "epoch": record["epoch"],
            "validation_accuracy": record["validation_accuracy"],
        }
        for stored in models.values()
        for record in stored.info["history"]
    ]
    return pd.DataFrame(rows).groupby(["method", "epoch"], sort=False, as_index=False)["validation_accuracy"].mean()
