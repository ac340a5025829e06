"""Class predictions for new images, as a user has them: encoded files (PNG, JPEG) or uint8 arrays of
any size and mode, brought to the model's input by the same preprocessing as ingest (image folders)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from headstart.ml.data.image_folder import pil_to_tensor
from headstart.ml.errors import InvalidDataError
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import image_batches, model_device, scale_images

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
    model: torch.nn.Module, images: torch.Tensor, classes: Sequence[str], batch_size: int = 256
) -> pd.DataFrame:
    """One row per image: the predicted class, its probability, and every class's probability."""
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        probabilities = (
            torch.cat(
                [
                    torch.softmax(model(scale_images(batch.to(device))).float(), dim=1).cpu()
                    for batch in image_batches(images, batch_size)
                ]
            )
            if len(images)
            else torch.zeros(0, len(classes))
        )
    best = probabilities.argmax(dim=1)
    table = pd.DataFrame(
        {
            "predicted_class": [str(classes[i]) for i in best.tolist()],
            "probability": probabilities.max(dim=1).values.double().numpy(),
        }
    )
    for index, name in enumerate(classes):
        table[f"probability_{name}"] = probabilities[:, index].double().numpy()
    return table


class ImageClassifier:
    """A stored model with what it needs to classify raw images: its classes, input size and channels."""

    def __init__(self, stored: StoredModel, image_size: int | None = None) -> None:
        info: dict[str, Any] = stored.info
        self.classes = [str(c) for c in info["classes"]]
        self.image_size = int(image_size or info["image_size"])
        self.channels = int(stored.config.get("in_channels", 1))
        self.model = stored.build()

    def predict(self, images: Sequence[ImageLike], names: Sequence[str] = ()) -> pd.DataFrame:
        return classify(self.model, prepare_images(images, self.image_size, self.channels, names), self.classes)
