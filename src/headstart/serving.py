"""Our models as MLflow models: a pyfunc that `mlflow.pyfunc.load_model` loads and `mlflow models
serve` serves, over the same safetensors weights and JSON config we store everywhere.

Why pyfunc from code, not the `mlflow.pytorch` flavour: that flavour saves the module with
torch.save (pickle), which headstart never writes. The model code (served_model.py) is logged as
source, the weights as safetensors, so nothing is pickled.

Input: a DataFrame with an `image` column of image files' bytes (PNG or JPEG, any size and mode;
base64 strings over HTTP). Arrays of varying size and mode cannot share one tensor schema, so a
uint8 array goes through `image_frame`, which encodes it as PNG. Output: `predicted_class`,
`probability` (calibrated by the model's stored temperature), `ood_score` and `out_of_distribution` (the
score above the model's stored threshold: an image unlike its training data; headstart.ml.ood), and
`probability_<class>` for every class. The score is headstart.ml.ood.DEFAULT_SCORE unless the logged
model's config names another (`model_config={"ood_score": "msp"}`).
"""

from __future__ import annotations

import tempfile
from importlib.metadata import requires
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import headstart
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import ImageClassifier, ImageLike, encode_png

MODEL_CODE = Path(__file__).with_name("served_model.py")
IMAGE_COLUMN = "image"
# headstart's dependencies that the served model loads: served_model.py, this module and the headstart.ml
# modules they import (timm's only when a timm model is built; scipy through scikit-learn). numpy, which
# the project does not pin, comes with pandas and scikit-learn.
SERVED_DISTRIBUTIONS = (
    "mlflow",
    "torch",
    "torchvision",
    "timm",
    "safetensors",
    "pydantic",
    "pillow",
    "pandas",
    "scikit-learn",
    "scipy",
    "tqdm",
)


def served_requirements() -> list[str]:
    """The served model's pip requirements, pinned as pyproject.toml pins headstart's own dependencies
    (read from the installed distribution), so a model is served with the packages it was made and
    tested with, and a timm model can be rebuilt there."""
    pinned = {}
    for line in requires("headstart") or []:
        requirement = Requirement(line)
        if requirement.marker is None:  # the extras (test, viz, ...) carry `extra == ...`
            pinned[canonicalize_name(requirement.name)] = str(requirement)
    missing = [name for name in SERVED_DISTRIBUTIONS if name not in pinned]
    if missing:
        raise RuntimeError(f"pyproject.toml does not pin {', '.join(missing)}, which the served model loads")
    return [pinned[name] for name in SERVED_DISTRIBUTIONS]


def image_frame(images: list[ImageLike]) -> pd.DataFrame:
    """The served model's input for images in hand (bytes of files, uint8 arrays, PIL images)."""
    return pd.DataFrame({IMAGE_COLUMN: [i if isinstance(i, bytes) else encode_png(i) for i in images]})


class HeadstartImageClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        # A run's model refers to its catalog file (one stored copy); a registered champion carries its own.
        weights = Path((context.model_config or {}).get("weights_file") or context.artifacts["weights"])
        described = Path(context.artifacts["model_json"])
        score = (context.model_config or {}).get("ood_score")
        self.classifier = ImageClassifier(
            StoredModel.decode(weights.read_bytes(), described.read_bytes()), ood_score=score
        )

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if IMAGE_COLUMN not in model_input:
            raise ValueError(f"the input needs an '{IMAGE_COLUMN}' column of image files' bytes (PNG or JPEG)")
        images = list(model_input[IMAGE_COLUMN])
        return self.classifier.predict(images, [f"row {i}" for i in range(len(images))])


def signature(classes: list[str]) -> ModelSignature:
    outputs = [ColSpec("string", "predicted_class"), ColSpec("double", "probability")]
    outputs += [ColSpec("double", "ood_score"), ColSpec("boolean", "out_of_distribution")]
    outputs += [ColSpec("double", f"probability_{name}") for name in classes]
    return ModelSignature(inputs=Schema([ColSpec("binary", IMAGE_COLUMN)]), outputs=Schema(outputs))


def log_image_classifier(
    stored: StoredModel,
    name: str,
    example_image: ImageLike,
    registered_model_name: str | None = None,
    weights_file: str | None = None,
):
    """Log `stored` as an MLflow model of the active run (registered when a name is given): ModelInfo.
    With `weights_file` (the catalog's copy of these weights) the MLflow model refers to that file
    instead of holding a second copy; without it the weights travel with the model (the champion)."""
    with tempfile.TemporaryDirectory() as folder:
        weights, described = Path(folder) / "model.safetensors", Path(folder) / "model.json"
        weights_bytes, described_bytes = stored.encode()
        described.write_bytes(described_bytes)
        artifacts = {"model_json": str(described)}
        if weights_file is None:
            weights.write_bytes(weights_bytes)
            artifacts["weights"] = str(weights)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            model_config={"weights_file": weights_file} if weights_file else None,
            code_paths=[str(Path(headstart.__file__).parent)],
            signature=signature([str(c) for c in stored.info["classes"]]),
            input_example=image_frame([example_image]),
            pip_requirements=served_requirements(),
            registered_model_name=registered_model_name,
        )


def load_logged_model(folder: Path) -> StoredModel:
    """The StoredModel inside a downloaded MLflow model folder (or a folder of our raw artifacts)."""
    for candidate in (folder / "artifacts", folder):
        if (candidate / "model.json").exists():
            return StoredModel.decode(
                (candidate / "model.safetensors").read_bytes(), (candidate / "model.json").read_bytes()
            )
    raise FileNotFoundError(f"{folder}: no model.json and model.safetensors in this model's artifacts")
