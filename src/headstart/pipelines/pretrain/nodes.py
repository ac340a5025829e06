"""Thin nodes over headstart.ml: make the source model, or reuse the one the catalog holds."""

from __future__ import annotations

import logging

from headstart.ml.data.images import LabelledImages
from headstart.ml.models.loading import load_source_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.pretraining import source_fingerprint, train_source_model
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
        config, model = load_source_model(
            pretrain.init, pretrain.origin, lambda classes: pretrain.architecture.to_config(in_channels, classes)
        )
        stored = StoredModel.from_module(model, config, {"init": pretrain.init, "origin": pretrain.origin})
        return {"source": stored}, {"reused": 0, "loaded": 1, "num_classes": config["num_classes"]}, []

    recipe = pretrain.recipe(runtime)
    made_from = source_fingerprint(recipe.settings, source_train, source_validation)
    cached = (catalogued_source_model or {}).get("source")
    if cached is not None and cached.info.get("fingerprint") == made_from and not pretrain.retrain:
        logger.info(
            "Reusing the catalogued source model (same data and parameters); set pretrain.retrain=true to train anew"
        )
        return {"source": cached}, {**cached.info["summary"], "reused": 1}, []
    model, summary, run = train_source_model(source_train, source_validation, recipe)
    return {"source": model}, summary, [run]
