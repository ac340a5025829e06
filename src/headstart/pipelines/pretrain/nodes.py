"""Thin nodes over headstart.ml: make the source model, or reuse the one the catalog holds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models import build_model
from headstart.ml.models.loading import adapt_input_channels, head_classes, load_torchvision_weights, read_state_file, to_our_names
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import fit
from headstart.ml.transfer import load_full_state
from headstart.params import PretrainParams, RuntimeParams

logger = logging.getLogger(__name__)


def _load_pretrained(pretrain: PretrainParams, in_channels: int) -> StoredModel:
    """A torchvision weights enum or a local checkpoint, renamed to our layout and fitted to the input channels."""
    if pretrain.init == "torchvision_weights":
        state, num_classes = load_torchvision_weights(pretrain.weights)
        config = pretrain.architecture.to_config(in_channels, num_classes)
    else:
        path = Path(pretrain.checkpoint)
        described = path.with_suffix(".json")  # our own models carry their config beside the weights
        state = read_state_file(path)
        if described.is_file():
            config = {**json.loads(described.read_text())["config"], "in_channels": in_channels}
        else:
            probe = build_model(pretrain.architecture.to_config(in_channels, 1))
            config = pretrain.architecture.to_config(in_channels, head_classes(to_our_names(probe, state)))
    model = build_model(config)
    load_full_state(model, adapt_input_channels(model, to_our_names(model, state)))
    return StoredModel.from_module(model, config, {"init": pretrain.init, "origin": pretrain.weights or pretrain.checkpoint})


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
        stored = _load_pretrained(pretrain, in_channels)
        return {"source": stored}, {"reused": 0, "loaded": 1, "num_classes": stored.config["num_classes"]}, []

    made_from = fingerprint(
        pretrain.model_dump(mode="json", exclude={"retrain"}),
        source_train.images, source_train.primary_labels, source_validation.images, source_validation.primary_labels,
    )
    cached = (catalogued_source_model or {}).get("source")
    if cached is not None and cached.info.get("fingerprint") == made_from and not pretrain.retrain:
        logger.info("Reusing the catalogued source model (same data and parameters); set pretrain.retrain=true to train anew")
        return {"source": cached}, {**cached.info["summary"], "reused": 1}, []

    config = pretrain.architecture.to_config(in_channels, len(source_train.primary_classes))
    checkpoint = Path(runtime.checkpoint_dir) / f"pretrain-{made_from[:16]}.pt"
    torch.manual_seed(pretrain.seed)
    model = build_model(config)
    result = fit(
        model,
        (source_train.images, source_train.primary_labels),
        (source_validation.images, source_validation.primary_labels),
        pretrain.training.to_config(pretrain.seed, runtime),
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
        "run_name": "pretrain source",
        "params": {"stage": "pretrain", **pretrain.model_dump(mode="json")},
        "history": result.history,
        "metrics": {k: v for k, v in summary.items() if k not in ("reused", "loaded")},
        "tags": {"stage": "pretrain"},
    }
    return {"source": StoredModel.from_module(model, config, info)}, summary, [run]
