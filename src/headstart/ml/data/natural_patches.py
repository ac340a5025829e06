"""Patches of natural photographs: far-domain targets for a source of printed digits, made offline from
the photographs installed packages ship (scikit-learn's `load_sample_images`: china.jpg and flower.jpg;
matplotlib's sample data: grace_hopper.jpg), so the task suite reaches past characters without a
download or a new dependency.

Each patch is a square cut at a seeded random place of one photograph, in colour. The task says what
a patch is labelled by:
- `photograph`: which photograph it was cut from (a colour-and-texture task);
- `rotation`: how far it was turned (0, 90, 180, 270 degrees; natural images have an up: sky, faces);
- `channel_order`: which of the six orders its red, green and blue planes were put in (skin, sky and
  foliage have their colours);
- `blur`: how strongly it was blurred (a Gaussian of σ 0, 1.5, 3 or 4.5 px at the patch's size).
A label is spread evenly over the patches (class counts at most one apart), and for the last three the
photographs are too, independently of the label, so a photograph never gives a label away. Printed
digits share none of these cues, so transfer from them may well not pay: that is the point of a far
task. Patches of one photograph may overlap (a 64 px patch is 1/67 of a 427 × 640 photograph).
"""

from __future__ import annotations

import itertools
import math
from functools import cache
from typing import Literal

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from matplotlib import cbook
from PIL import Image
from pydantic import Field, model_validator
from sklearn.datasets import load_sample_image

from headstart.ml.config import Settings
from headstart.ml.data.images import LabelledImages, to_uint8_images

PHOTOGRAPHS = ("china", "flower", "grace_hopper")
PATCH_TASKS = ("photograph", "rotation", "channel_order", "blur")
ROTATIONS = (0, 90, 180, 270)  # degrees, counter-clockwise
CHANNEL_ORDERS = tuple("".join(order) for order in itertools.permutations("RGB"))
BLUR_SIGMAS = (0.0, 1.5, 3.0, 4.5)  # px at the patch's size, before it is resized to the model's input
PLACES_TRIED = 4  # random places per patch, the one of the most contrast kept
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # ITU-R 601, as images.to_uint8_images


class NaturalPatchesStyle(Settings):
    """What the patches are labelled by, how many, from which photographs, and how large they are cut
    (then resized to `ingest.image.size`, as every source is)."""

    task: Literal[PATCH_TASKS] = "photograph"
    count: int = Field(1200, ge=1)
    seed: int = 0
    photographs: tuple[Literal[PHOTOGRAPHS], ...] = Field(PHOTOGRAPHS, min_length=1)
    patch_size: int = Field(64, ge=16, le=256)  # px cut from a photograph (the smallest is 427 px high)

    @model_validator(mode="after")
    def _can_balance(self) -> NaturalPatchesStyle:
        if self.task == "photograph" and len(set(self.photographs)) < 2:
            raise ValueError("photographs: the photograph task needs at least two different photographs")
        if len(set(self.photographs)) != len(self.photographs):
            raise ValueError(f"photographs: {list(self.photographs)} names one twice")
        classes = len(patch_classes(self.task, self.photographs))
        if self.count < 2 * classes:
            raise ValueError(
                f"count: {self.count} patches cannot hold two of each of the {classes} classes of task {self.task}"
            )
        return self


class NaturalPatchesConfig(NaturalPatchesStyle):
    """One cut pool: its style and the image form."""

    image_size: int = Field(ge=8)
    channels: int = Field(ge=1)


def patch_classes(task: str, photographs: tuple[str, ...] = PHOTOGRAPHS) -> list[str]:
    """The class names of `task`, in label order."""
    return {
        "photograph": list(photographs),
        "rotation": [f"{degrees}°" for degrees in ROTATIONS],
        "channel_order": list(CHANNEL_ORDERS),
        "blur": [f"σ {sigma:g}" for sigma in BLUR_SIGMAS],
    }[task]


@cache
def load_photograph(name: str) -> torch.Tensor:
    """One installed photograph as float 3×H×W in [0, 1] (read once per process)."""
    if name == "grace_hopper":
        with cbook.get_sample_data("grace_hopper.jpg") as file:
            pixels = np.asarray(Image.open(file).convert("RGB"))
    else:
        pixels = load_sample_image(f"{name}.jpg")
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255.0


def balanced_labels(count: int, classes: int, generator: torch.Generator) -> torch.Tensor:
    """`count` labels of `classes` classes, each class count ⌊count/classes⌋ or one more, in seeded order."""
    return (torch.arange(count) % classes)[torch.randperm(count, generator=generator)]


def cut_patches(photographs: tuple[str, ...], which: torch.Tensor, size: int, generator: torch.Generator):
    """One `size` px square per entry of `which` (an index into `photographs`): of `PLACES_TRIED` seeded
    random places, the one of the most contrast (luma standard deviation), so few patches are flat
    (a patch of sky has no up and no blur to tell)."""
    patches = torch.empty(len(which), 3, size, size)
    places = torch.rand(len(which), PLACES_TRIED, 2, generator=generator)
    for index, photograph in enumerate(which.tolist()):
        image = load_photograph(photographs[photograph])
        room = torch.tensor([image.shape[1] - size + 1, image.shape[2] - size + 1])
        tried = [image[:, top : top + size, left : left + size] for top, left in (places[index] * room).long().tolist()]
        patches[index] = max(tried, key=lambda patch: float((patch * LUMA).sum(0).std()))
    return patches


def label_patches(patches: torch.Tensor, task: str, labels: torch.Tensor) -> torch.Tensor:
    """`patches` turned, reordered or blurred as their `task` labels say (`photograph`: as cut)."""
    if task == "photograph":
        return patches
    out = patches.clone()
    for label in range(len(patch_classes(task))):
        chosen = labels == label
        if task == "rotation":
            out[chosen] = torch.rot90(patches[chosen], ROTATIONS[label] // 90, dims=(-2, -1))
        elif task == "channel_order":
            out[chosen] = patches[chosen][:, ["RGB".index(c) for c in CHANNEL_ORDERS[label]]]
        elif task == "blur" and BLUR_SIGMAS[label] > 0 and chosen.any():
            sigma = BLUR_SIGMAS[label]
            out[chosen] = TF.gaussian_blur(patches[chosen], [2 * math.ceil(3 * sigma) + 1] * 2, [sigma, sigma])
    return out


def make_natural_patches(config: NaturalPatchesConfig) -> LabelledImages:
    """`count` patches labelled by `task` (and by `photograph`, what each was cut from), classes balanced;
    deterministic in `seed`."""
    generator = torch.Generator().manual_seed(config.seed)
    photographs = tuple(config.photographs)
    labels = balanced_labels(config.count, len(patch_classes(config.task, photographs)), generator)
    which = labels if config.task == "photograph" else balanced_labels(config.count, len(photographs), generator)
    patches = label_patches(cut_patches(photographs, which, config.patch_size, generator), config.task, labels)
    tasks = {config.task: labels} | ({"photograph": which} if config.task != "photograph" else {})
    return LabelledImages(
        images=to_uint8_images(patches, config.image_size, config.channels),
        labels=tasks,
        classes={task: patch_classes(task, photographs) for task in tasks},
    )
