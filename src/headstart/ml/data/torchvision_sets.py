"""torchvision data sets by name and split, kept in data/01_raw on the user's machine."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
import torchvision.datasets

from headstart.ml.data.image_folder import pil_to_tensor
from headstart.ml.data.images import LabelledImages
from headstart.ml.errors import InvalidDataError

# Classification sets whose items are (PIL image, int label).
SUPPORTED = ("MNIST", "FashionMNIST", "KMNIST", "QMNIST", "USPS", "SVHN", "CIFAR10", "CIFAR100", "STL10")


def open_torchvision_dataset(name: str, split: str, root: str | Path, download: bool):
    """The torchvision data set object; a clear error for an unknown name or files not on disk."""
    if name not in SUPPORTED:
        raise InvalidDataError(f"unknown torchvision data set '{name}'; supported: {', '.join(SUPPORTED)}")
    dataset_class = getattr(torchvision.datasets, name)
    signature = inspect.signature(dataset_class.__init__).parameters
    if "split" in signature:
        split_argument = {"split": split}
    elif split in ("train", "test"):
        split_argument = {"train": split == "train"}
    else:
        raise InvalidDataError(f"torchvision data set '{name}' has splits 'train' and 'test', not '{split}'")
    try:
        return dataset_class(root=str(root), download=download, **split_argument)
    except (RuntimeError, OSError, ValueError) as error:
        raise InvalidDataError(
            f"torchvision data set '{name}' (split '{split}') is not under {root} and could not be "
            f"downloaded ({error}). On a machine with internet, run the ingest pipeline once with "
            f"download: true, or copy the data set's files into {Path(root) / name}."
        ) from error


def load_torchvision_dataset(
    name: str, split: str, root: str | Path, download: bool, image_size: int, channels: int, limit: int | None = None
) -> LabelledImages:
    """The first `limit` items (all when None) of a torchvision data set, converted to size and channels."""
    dataset = open_torchvision_dataset(name, split, root, download)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    images, labels = [], []
    for index in range(count):
        image, label = dataset[index]
        images.append(pil_to_tensor(image, image_size, channels))
        labels.append(int(label))
    classes = [str(c) for c in getattr(dataset, "classes", [])] or [str(c) for c in range(max(labels) + 1)]
    return LabelledImages(
        images=torch.stack(images), labels={"label": torch.tensor(labels)}, classes={"label": classes}
    )
