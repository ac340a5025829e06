"""`nearest_neighbours`: k-nearest-neighbours on the raw pixels (Euclidean), a classical reference (Cover &
Hart 1967). It stores the training images; `neighbours` is its grid, the first (1-NN) its default."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sklearn.neighbors import KNeighborsClassifier

from headstart.ml.strategies.base import register
from headstart.ml.strategies.classical import Classical, ClassicalKnobs
from headstart.ml.strategies.linear_classifier import one_fit_history
from headstart.ml.training import resolve_device, scale_images


class NearestNeighboursKnobs(ClassicalKnobs):
    neighbours: list[Annotated[int, Field(ge=1)]] = Field([1, 3, 5, 9], min_length=1)  # k: its grid


@register
class NearestNeighbours(Classical):
    name = "nearest_neighbours"
    Knobs = NearestNeighboursKnobs

    def grid(self, knobs, lr_scales):
        return [{"neighbours": n} for n in knobs.neighbours]

    def neighbours(self, config) -> int:
        return int(config.tuned("neighbours", config.knobs.neighbours[0]))

    def model_config(self, config, input_shape, classes, count):
        return {
            "name": "pixel_nearest_neighbours",
            "input_shape": list(input_shape),
            "num_classes": classes,
            "memory_size": count,
            "neighbours": self.neighbours(config),
        }

    def estimator(self, config, shape):
        """k-NN asks for at most as many neighbours as images, as PixelNearestNeighbours does."""
        return KNeighborsClassifier(min(self.neighbours(config), shape[0]))

    def train(self, task, config, result, checkpoint):
        result.model.to(resolve_device(config.training.device)).remember(scale_images(task.train[0]), task.train[1])

    def record_history(self, result, measured):
        one_fit_history(result, measured)

    def price(self, meter, plan, config, scale):
        return 0, 0.0, meter.passes(config, plan.validation, scale)  # storing the images, then one pass
