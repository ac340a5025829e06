"""The one in-memory form every data source produces, and the conversions between forms."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from headstart.ml.errors import InvalidDataError

MISSING_LABEL = -1


@dataclass(frozen=True)
class LabelledImages:
    """Images as uint8 N×C×H×W (in memory, or `ImageFiles` on disk: a folder larger than memory)
    with one integer label vector per task.

    The first task is the primary one (used for stratified splits). A label of -1 means
    "missing" for that sample and task (multi-task data may be partly labelled).
    """

    images: torch.Tensor  # or ImageFiles, indexed alike
    labels: dict[str, torch.Tensor]
    classes: dict[str, list[str]]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise InvalidDataError(
                f"images must be a uint8 tensor N×C×H×W, got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if not self.labels:
            raise InvalidDataError("a labelled image set needs at least one task")
        if set(self.labels) != set(self.classes):
            raise InvalidDataError(
                f"tasks with labels {sorted(self.labels)} differ from tasks with classes {sorted(self.classes)}"
            )
        for task, labels in self.labels.items():
            if labels.shape != (len(self.images),):
                raise InvalidDataError(f"task '{task}': {tuple(labels.shape)} labels for {len(self.images)} images")
            out_of_range = labels[(labels < MISSING_LABEL) | (labels >= len(self.classes[task]))]
            if len(out_of_range):
                raise InvalidDataError(
                    f"task '{task}': label {int(out_of_range[0])} is outside the class list "
                    f"{self.classes[task]} (valid: 0..{len(self.classes[task]) - 1}, or -1 for missing)"
                )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def primary_task(self) -> str:
        return next(iter(self.labels))

    @property
    def primary_labels(self) -> torch.Tensor:
        return self.labels[self.primary_task]

    @property
    def primary_classes(self) -> list[str]:
        return self.classes[self.primary_task]

    def with_primary_task(self, task: str) -> LabelledImages:
        """The same images with `task` first: the one a target of several labels is classified by."""
        if task not in self.labels:
            raise InvalidDataError(f"no task '{task}' in these images; their tasks: {list(self.labels)}")
        order = [task, *(name for name in self.labels if name != task)]
        return replace(
            self, labels={name: self.labels[name] for name in order}, classes={n: self.classes[n] for n in order}
        )

    def primary_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the primary task, entries with a missing label left out."""
        keep = self.primary_labels >= 0
        return select(self.images, keep.nonzero().flatten()), self.primary_labels[keep]

    def subset(self, indices: torch.Tensor | list[int]) -> LabelledImages:
        index = torch.as_tensor(indices, dtype=torch.long)
        return LabelledImages(
            images=select(self.images, index),
            labels={task: labels[index] for task, labels in self.labels.items()},
            classes=self.classes,
        )

    def concat(self, other: LabelledImages) -> LabelledImages:
        """These images followed by `other`'s, which must have the same tasks and classes."""
        if other.classes != self.classes:
            raise InvalidDataError(f"cannot join images of classes {other.classes} to images of classes {self.classes}")
        return LabelledImages(
            join(self.images, other.images),
            {task: torch.cat([labels, other.labels[task]]) for task, labels in self.labels.items()},
            self.classes,
        )

    def in_memory(self) -> LabelledImages:
        """The images decoded into memory if they stream from disk (for selections small enough)."""
        if isinstance(self.images, torch.Tensor):
            return self
        return LabelledImages(self.images.load(), self.labels, self.classes)

    def class_counts(self, task: str | None = None) -> dict[str, int]:
        """Images per class name (missing labels not counted)."""
        task = task or self.primary_task
        counts = torch.bincount(self.labels[task][self.labels[task] >= 0], minlength=len(self.classes[task]))
        return {name: int(count) for name, count in zip(self.classes[task], counts)}


def select(images, index: torch.Tensor):
    """Images at `index`: a tensor's rows, or an on-disk selection that stays on disk."""
    return images[index] if isinstance(images, torch.Tensor) else images.subset(index)


def join(first, second):
    if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor):
        return torch.cat([first, second])
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        raise InvalidDataError("cannot join images in memory to images streamed from disk")
    return first.join(second)


def to_uint8_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Convert float images in [0, 1] (N×C×H×W, any size, 1 or 3 channels) to the configured form.

    Channels: grey → RGB repeats the plane; RGB → grey uses the ITU-R 601 luma weights (as PIL's "L").
    """
    if images.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        images = (images * weights).sum(dim=1, keepdim=True)
    elif images.shape[1] == 1 and channels == 3:
        images = images.repeat(1, 3, 1, 1)
    elif images.shape[1] != channels:
        raise InvalidDataError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")
    if images.shape[-2:] != (size, size):
        downsampling = images.shape[-1] > size or images.shape[-2] > size
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=downsampling)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def block_counts_to_images(counts: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """UCI-style 8×8 block counts (0–16 on-pixels per 4×4 block) → uint8 images of the model's size.

    Both the printed-digit source and the handwritten target pass through here, so the two share
    one preprocessing exactly.
    """
    return to_uint8_images(counts.float().unsqueeze(1) / 16.0, size, channels)
