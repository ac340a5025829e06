"""The source model made from the source data: trained (and fingerprinted, so an unchanged one is
reused) or loaded from weights made elsewhere. Pretrain and advise (its candidate sources) both call it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import TrainConfig, fit


@dataclass(frozen=True)
class SourceRecipe:
    """How a source model is trained: the settings it is made from (its fingerprint and run record),
    its architecture for (input channels, classes), its training, seed and checkpoint folder."""

    settings: dict[str, Any]
    architecture: Callable[[int, int], dict[str, Any]]
    training: TrainConfig
    seed: int
    checkpoint_dir: Path


def source_fingerprint(
    settings: dict[str, Any], source_train: LabelledImages, source_validation: LabelledImages, task: str | None = None
) -> str:
    """What a trained source model is made from: the settings and the labelled source data of `task`
    (None: the primary task, whose fingerprint leaves the task out, as models saved before did)."""
    task = task or source_train.primary_task
    named = {} if task == source_train.primary_task else {"task": task}
    return fingerprint(
        {**settings, **named},
        source_train.images,
        source_train.labels[task],
        source_validation.images,
        source_validation.labels[task],
    )


def train_source_model(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    recipe: SourceRecipe,
    task: str | None = None,
    run_name: str = "pretrain source",
) -> tuple[StoredModel, dict, dict]:
    """A source model trained on `task` (None: the primary one), a summary of its training, and the
    training as an MLflow child-run record (a plain dict; the hook logs it)."""
    task = task or source_train.primary_task
    made_from = source_fingerprint(recipe.settings, source_train, source_validation, task)
    config = recipe.architecture(int(source_train.images.shape[1]), len(source_train.classes[task]))
    checkpoint = recipe.checkpoint_dir / f"pretrain-{made_from[:16]}.pt"
    torch.manual_seed(recipe.seed)
    model = build_model(config)
    result = fit(
        model,
        (source_train.images, source_train.labels[task]),
        (source_validation.images, source_validation.labels[task]),
        recipe.training.model_copy(update={"label": run_name}),  # logged live under its name
        checkpoint,
    )
    checkpoint.unlink(missing_ok=True)  # finished: a later run with the same fingerprint reuses the saved model instead
    best = result.history[result.best_epoch - 1]
    summary = {
        "reused": 0,
        "loaded": 0,
        "num_classes": config["num_classes"],
        "epochs_trained": len(result.history),
        "best_epoch": result.best_epoch,
        "validation_accuracy": best["validation_accuracy"],
        "validation_loss": best["validation_loss"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    info = {"init": "train", "fingerprint": made_from, "summary": summary, "history": result.history}
    run = {
        "run_name": run_name,
        "params": {"stage": "pretrain", "task": task, **recipe.settings},
        "history": result.history,
        "metrics": {k: v for k, v in summary.items() if k not in ("reused", "loaded")},
        "tags": {"stage": "pretrain"},
        "training_label": run_name,
    }
    return StoredModel.from_module(model, config, info), summary, run
