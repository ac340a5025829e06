"""Thin nodes over headstart.ml: make the source model, or reuse the one the catalog holds."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models import build_model
from headstart.ml.models.loading import load_source_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import fit
from headstart.params import PretrainParams, RuntimeParams

logger = logging.getLogger(__name__)


def prepare_source_model(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    catalogued_source_model: dict[str, StoredModel] | None,
    pretrain: PretrainParams,
    runtime: RuntimeParams,
) -> tuple[dict[str, StoredModel], dict, list[dict]]:
    """The source model, a summary of how it was made, and its training as an MLflow child run.

    A catalogued model made from the same source data and parameters is reused unless
    `pretrain.retrain` is set; any difference in either trains a new one.
    """
    in_channels = int(source_train.images.shape[1])
    if pretrain.init != "train":
        origin = pretrain.weights or pretrain.checkpoint
        config, model = load_source_model(
            pretrain.init, origin, lambda classes: pretrain.architecture.to_config(in_channels, classes)
        )
        stored = StoredModel.from_module(model, config, {"init": pretrain.init, "origin": origin})
        return {"source": stored}, {"reused": 0, "loaded": 1, "num_classes": config["num_classes"]}, []

    made_from = source_fingerprint(pretrain, source_train, source_validation)
    cached = (catalogued_source_model or {}).get("source")
    if cached is not None and cached.info.get("fingerprint") == made_from and not pretrain.retrain:
        logger.info(
            "Reusing the catalogued source model (same data and parameters); set pretrain.retrain=true to train anew"
        )
        return {"source": cached}, {**cached.info["summary"], "reused": 1}, []
    model, summary, run = train_source_model(source_train, source_validation, pretrain, runtime)
    return {"source": model}, summary, [run]


def source_fingerprint(
    pretrain: PretrainParams, source_train: LabelledImages, source_validation: LabelledImages, task: str | None = None
) -> str:
    """What a trained source model is made from: the parameters and the labelled source data of `task`
    (None: the primary task, whose fingerprint leaves the task out, as models saved before did)."""
    task = task or source_train.primary_task
    named = {} if task == source_train.primary_task else {"task": task}
    return fingerprint(
        {**pretrain.model_dump(mode="json", exclude={"retrain"}), **named},
        source_train.images,
        source_train.labels[task],
        source_validation.images,
        source_validation.labels[task],
    )


def train_source_model(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    pretrain: PretrainParams,
    runtime: RuntimeParams,
    task: str | None = None,
    run_name: str = "pretrain source",
) -> tuple[StoredModel, dict, dict]:
    """A source model trained on `task` (None: the primary one), a summary of its training, and
    the training as an MLflow child-run record. `advise` makes its candidate sources with it too."""
    task = task or source_train.primary_task
    made_from = source_fingerprint(pretrain, source_train, source_validation, task)
    in_channels = int(source_train.images.shape[1])
    config = pretrain.architecture.to_config(in_channels, len(source_train.classes[task]))
    checkpoint = Path(runtime.checkpoint_dir) / f"pretrain-{made_from[:16]}.pt"
    torch.manual_seed(pretrain.seed)
    model = build_model(config)
    result = fit(
        model,
        (source_train.images, source_train.labels[task]),
        (source_validation.images, source_validation.labels[task]),
        replace(pretrain.training.to_config(pretrain.seed, runtime), label=run_name),  # logged live under its name
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
        "params": {"stage": "pretrain", "task": task, **pretrain.model_dump(mode="json")},
        "history": result.history,
        "metrics": {k: v for k, v in summary.items() if k not in ("reused", "loaded")},
        "tags": {"stage": "pretrain"},
        "training_label": run_name,
    }
    return StoredModel.from_module(model, config, info), summary, run
