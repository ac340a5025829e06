"""Class predictions for new images, as a user has them: encoded files (PNG, JPEG) or uint8 arrays of
any size and mode, brought to the model's input by the same preprocessing as ingest (image folders);
with probabilities calibrated by the model's stored temperature and a flag for images unlike its
training data (its stored out-of-distribution threshold)."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from headstart.ml.calibration import fit_temperature
from headstart.ml.calibration import probabilities as calibrated
from headstart.ml.data.image_folder import pil_to_tensor
from headstart.ml.errors import InvalidDataError
from headstart.ml.models.stored import StoredModel
from headstart.ml.ood import (
    DEFAULT_SCORE,
    SCORES,
    OutOfDistribution,
    fit_out_of_distribution,
    logits_and_features,
)
from headstart.ml.training import resolve_device

logger = logging.getLogger(__name__)
ImageLike = bytes | np.ndarray | Image.Image


def as_pil(image: ImageLike, name: str = "image") -> Image.Image:
    """An encoded file's bytes, a uint8 array (H×W, H×W×1, H×W×3 or H×W×4) or a PIL image → PIL image."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, bytes | bytearray):
        try:
            decoded = Image.open(io.BytesIO(image))
            decoded.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise InvalidDataError(f"{name}: not a readable image file ({error})") from error
        return decoded
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise InvalidDataError(f"{name}: pixels must be uint8 (0-255), got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InvalidDataError(f"{name}: expected H×W, H×W×1, H×W×3 or H×W×4 pixels, got shape {array.shape}")
    return Image.fromarray(array)


def as_array(image: torch.Tensor) -> np.ndarray:
    """A C×H×W uint8 image tensor as a user holds the image: H×W (grey) or H×W×3."""
    return image.permute(1, 2, 0).squeeze(-1).numpy()


def encode_png(image: ImageLike) -> bytes:
    """PNG bytes of an image: the form the served model takes over HTTP (base64 in JSON)."""
    buffer = io.BytesIO()
    as_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def prepare_images(
    images: Sequence[ImageLike], image_size: int, channels: int, names: Sequence[str] = ()
) -> torch.Tensor:
    """uint8 N×C×H×W at the model's size and channels (transparency flattened onto black, as in ingest)."""
    names = list(names) or [f"image {i}" for i in range(len(images))]
    return torch.stack(
        [pil_to_tensor(as_pil(image, name), image_size, channels) for image, name in zip(images, names, strict=True)]
    )


def classify(
    model: torch.nn.Module,
    images: torch.Tensor,
    classes: Sequence[str],
    batch_size: int = 256,
    temperature: float = 1.0,
    detector: OutOfDistribution | None = None,
    ood_score: str = DEFAULT_SCORE,
) -> pd.DataFrame:
    """One row per image: the predicted class, its probability (temperature-scaled: calibrated when the
    model's temperature was fitted), its out-of-distribution score and whether that is above the
    model's threshold (`detector`; without one the score is NaN and nothing is flagged), and every
    class's probability."""
    logits, features = logits_and_features(
        model, images, batch_size, features=detector is not None and ood_score == "knn"
    )
    logits = logits if len(images) else torch.zeros(0, len(classes))
    probabilities = calibrated(logits, temperature)
    if detector is not None and len(images):
        scores = detector.scores(logits, features, ood_score)
        flags = detector.flags(scores, ood_score).numpy()
        scores = scores.double().numpy()
    else:
        scores, flags = np.full(len(images), np.nan), np.zeros(len(images), dtype=bool)
    best = probabilities.argmax(dim=1)
    table = pd.DataFrame(
        {
            "predicted_class": [str(classes[i]) for i in best.tolist()],
            "probability": probabilities.max(dim=1).values.double().numpy(),
            "ood_score": scores,
            "out_of_distribution": flags.astype(bool),
        }
    )
    for index, name in enumerate(classes):
        table[f"probability_{name}"] = probabilities[:, index].double().numpy()
    return table


def calibrate_models(
    models: Mapping[str, StoredModel],
    train_images: torch.Tensor,
    validation_images: torch.Tensor,
    validation_labels: torch.Tensor,
    device: str = "cpu",
) -> Mapping[str, StoredModel]:
    """Each model with its temperature (Guo et al. 2017) and out-of-distribution thresholds fitted on
    validation (headstart.ml.calibration, headstart.ml.ood) written into its info, so the stored model
    predicts calibrated probabilities and flags strange images after loading. In place, and returned:
    the later looks store the very objects they evaluate."""
    for stored in models.values():
        model = stored.build().to(resolve_device(device))
        logits, features = logits_and_features(model, validation_images)  # one pass for both fits
        temperature = fit_temperature(logits, validation_labels)
        detector = fit_out_of_distribution(
            model, train_images, validation_images, temperature, validation_pass=(logits, features)
        )
        stored.info["temperature"] = temperature
        stored.info["out_of_distribution"] = detector.to_info()
    return models


class ImageClassifier:
    """A stored model with what it needs to classify raw images: its classes, input size and channels,
    its temperature and its out-of-distribution thresholds (stored by `calibrate_models`; a model stored
    before them predicts with T = 1 and flags nothing). `ood_score`: which score flags (headstart.ml.ood)."""

    def __init__(self, stored: StoredModel, image_size: int | None = None, ood_score: str | None = None) -> None:
        info: dict[str, Any] = stored.info
        self.classes = [str(c) for c in info["classes"]]
        self.image_size = int(image_size or info["image_size"])
        self.channels = stored.in_channels
        self.model = stored.build()
        self.temperature = float(info.get("temperature", 1.0))
        described = info.get("out_of_distribution")
        self.detector = OutOfDistribution.from_info(described) if described else None
        self.ood_score = ood_score or DEFAULT_SCORE
        if self.ood_score not in SCORES:
            raise InvalidDataError(f"unknown out-of-distribution score '{self.ood_score}'; known: {', '.join(SCORES)}")
        if self.detector is None:
            logger.warning(
                "This model was stored without a temperature or out-of-distribution thresholds (made before "
                "headstart fitted them): its probabilities are uncalibrated and no image is flagged"
            )

    def predict(self, images: Sequence[ImageLike], names: Sequence[str] = ()) -> pd.DataFrame:
        return classify(
            self.model,
            prepare_images(images, self.image_size, self.channels, names),
            self.classes,
            temperature=self.temperature,
            detector=self.detector,
            ood_score=self.ood_score,
        )
