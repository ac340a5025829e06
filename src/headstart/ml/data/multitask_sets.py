"""Multi-task data sets: MultiMNIST-style digit pairs, and users' CSV manifests (one column per task)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from headstart.ml.data.image_folder import read_image
from headstart.ml.data.images import LabelledImages
from headstart.ml.errors import InvalidDataError


def overlay_digit_pairs(digits: LabelledImages, pairs: int, seed: int) -> LabelledImages:
    """MultiMNIST (Sener & Koltun, NeurIPS 2018): the left digit at [0:28, 0:28] and the right at
    [6:34, 6:34] of a 36×36 canvas (scaled to the image size), pixel-wise max, resized back.
    Both digits come from `digits`, so pairs never cross a split. Tasks: `left`, `right`."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.randint(len(digits), (pairs,), generator=generator)
    right = torch.randint(len(digits), (pairs,), generator=generator)
    images = digits.images
    size = images.shape[-1]
    offset = round(6 * size / 28)
    canvas = torch.zeros(pairs, images.shape[1], size + offset, size + offset, dtype=torch.uint8)
    canvas[..., :size, :size] = images[left]
    region = canvas[..., offset:, offset:]
    canvas[..., offset:, offset:] = torch.maximum(region, images[right])
    resized = F.interpolate(canvas.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    classes = digits.primary_classes
    return LabelledImages(
        images=resized.round().clamp(0, 255).to(torch.uint8),
        labels={"left": digits.primary_labels[left], "right": digits.primary_labels[right]},
        classes={"left": list(classes), "right": list(classes)},
    )


YES_NO = ["no", "yes"]  # a task with these classes is a yes/no label: one sigmoid output (headstart.ml.multitask)


def digit_presence(pairs: LabelledImages) -> LabelledImages:
    """Multi-label targets on digit pairs (`overlay_digit_pairs`): per digit class, `has_<class>`, yes
    when the left or the right digit is that class (missing when either is missing)."""
    left, right = pairs.labels["left"], pairs.labels["right"]
    missing = (left < 0) | (right < 0)
    labels = {}
    for index, name in enumerate(pairs.classes["left"]):
        present = ((left == index) | (right == index)).long()
        labels[f"has_{name}"] = torch.where(missing, -1, present)
    return LabelledImages(pairs.images, labels, {task: list(YES_NO) for task in labels})


def load_manifest(path: str | Path, image_size: int, channels: int, image_column: str = "image") -> LabelledImages:
    """A CSV with an image path column (relative to the CSV) and one label column per task;
    an empty cell is a missing label (-1). Class lists are each task's sorted labels."""
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError(f"{path}: manifest not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if image_column not in table.columns:
        raise InvalidDataError(f"{path}: no '{image_column}' column (columns: {', '.join(table.columns)})")
    tasks = [c for c in table.columns if c != image_column]
    if not tasks:
        raise InvalidDataError(f"{path}: no task columns besides '{image_column}'")
    classes, labels = {}, {}
    for task in tasks:
        values = table[task].str.strip()
        classes[task] = sorted(v for v in values.unique() if v)
        if not classes[task]:
            raise InvalidDataError(f"{path}: column '{task}' has no labels")
        index = {name: i for i, name in enumerate(classes[task])}
        labels[task] = torch.tensor([index.get(v, -1) for v in values], dtype=torch.long)
    names = table[image_column].str.strip()  # "a.png, round" (a space after the comma) still finds a.png
    if (names == "").any():
        row = int((names == "").to_numpy().argmax()) + 1  # data rows from 1 (blank lines are not rows)
        raise InvalidDataError(f"{path}: row {row} has no image path in column '{image_column}'")
    # the same reader as image folders: EXIF orientation, CMYK, 16-bit, transparency; a bad file refused by name
    images = torch.stack([read_image(path.parent / name, image_size, channels) for name in names])
    return LabelledImages(images=images, labels=labels, classes=classes)


def hide_labels(data: LabelledImages, task: str, fraction: float, seed: int) -> LabelledImages:
    """A copy with `fraction` of `task`'s labels set missing (-1), to exercise missing-label training."""
    if task not in data.labels:
        raise InvalidDataError(f"missing_labels.task: no task '{task}' (tasks: {', '.join(data.labels)})")
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randperm(len(data), generator=generator)[: round(fraction * len(data))]
    labels = dict(data.labels)
    labels[task] = labels[task].clone()
    labels[task][hidden] = -1
    return LabelledImages(images=data.images, labels=labels, classes=data.classes)


def with_tasks(data: LabelledImages, tasks: list[str]) -> LabelledImages:
    """The same images labelled for `tasks` only, in that order."""
    return LabelledImages(data.images, {t: data.labels[t] for t in tasks}, {t: data.classes[t] for t in tasks})
