"""Thin node: classify the images of a folder with the chosen model; a row per image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

import pandas as pd

from headstart.ml.data.image_folder import IMAGE_SUFFIXES, is_hidden
from headstart.ml.errors import InvalidDataError
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import ImageClassifier
from headstart.ml.selection import choose_candidate
from headstart.params import IngestParams, PredictParams

logger = logging.getLogger(__name__)


def chosen_model(model: dict | Mapping[str, StoredModel] | None, predict: PredictParams) -> tuple[StoredModel, str]:
    """(model, how to name its version in the predictions) for the champion or a strategy's models."""
    if predict.model == "champion":
        if model is None:
            raise InvalidDataError(
                "predict.model is 'champion' but the registry has no champion yet: run "
                "`kedro run --pipelines=retrain` first, or name a strategy (--params=predict.model=finetune_top)"
            )
        return model["model"], f"champion v{model['version']}"
    strategy, stored = choose_candidate([model])
    return stored, f"{strategy} seed {stored.info['seed']}"


def predict_images(
    images_to_predict: dict[str, Callable], model: dict | None, predict: PredictParams, ingest: IngestParams
) -> pd.DataFrame:
    """The predicted class and its calibrated probability (and every class's), its out-of-distribution
    score (`predict.ood_score`) and whether the model's stored threshold flags it, for each image."""
    names = sorted(
        name
        for name in images_to_predict
        if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
        and not is_hidden(PurePosixPath(name))  # .DS_Store, ._x.png, __MACOSX/
    )
    if not names:
        raise InvalidDataError(f"images_to_predict: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stored, version = chosen_model(model, predict)
    classifier = ImageClassifier(stored, stored.info.get("image_size") or ingest.image.size, predict.ood_score)
    table = classifier.predict([images_to_predict[name]() for name in names], names)
    table.insert(0, "file", names)
    table.insert(3, "model_version", version)
    logger.info(
        "Predicted %d images with %s; %d flagged out of distribution (%s score)",
        len(table),
        version,
        int(table["out_of_distribution"].sum()),
        classifier.ood_score,
    )
    return table
