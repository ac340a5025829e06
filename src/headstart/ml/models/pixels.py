"""Classical references on the raw pixels, as modules like every other model, so they are stored as
safetensors, evaluated by the same `evaluate` and compared in the same tables.

- `PixelLinear`: the features are the scaled pixels themselves; a linear head, which the
  `linear_classifier` procedure fills with scikit-learn's logistic regression (or linear SVM).
- `PixelNearestNeighbours`: k-nearest-neighbours on the pixels. Fitting is storing the labelled
  images; prediction is a Euclidean top-k vote in torch, because scikit-learn's fitted
  KNeighborsClassifier could be stored only by pickling it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class PixelLinear(nn.Module):
    def __init__(
        self, input_shape: Sequence[int], num_classes: int, head_hidden: Sequence[int] = (), **_: object
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_features = int(torch.tensor(self.input_shape).prod())
        self.head = nn.Linear(self.num_features, num_classes)

    def block_prefixes(self) -> list[tuple[str, ...]]:
        return []  # nothing to transfer: copy_blocks 0 is the only choice

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))


class PixelNearestNeighbours(nn.Module):
    """Scores are log vote shares (smoothed so every class keeps a little probability, and NLL is finite)."""

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, memory_size: int, neighbours: int, **_: object
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_classes, self.neighbours = num_classes, min(neighbours, memory_size)
        features = int(torch.tensor(self.input_shape).prod())
        self.register_buffer("memory", torch.zeros(memory_size, features))
        self.register_buffer("memory_labels", torch.zeros(memory_size, dtype=torch.long))

    def remember(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Fitting k-NN: keep the scaled training images and their labels."""
        self.memory.copy_(images.flatten(1).to(self.memory))
        self.memory_labels.copy_(labels.to(self.memory_labels.device))

    def block_prefixes(self) -> list[tuple[str, ...]]:
        return []  # nothing to transfer: copy_blocks 0 is the only choice

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(self.forward_features(images).float(), self.memory)
        nearest = distances.topk(self.neighbours, largest=False).indices
        votes = nn.functional.one_hot(self.memory_labels[nearest], self.num_classes).float().mean(1)
        return torch.log(votes * (1 - 1e-3) + 1e-3 / self.num_classes)
