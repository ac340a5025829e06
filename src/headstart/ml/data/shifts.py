"""A shift of the target's domain away from the source's, the task unchanged: the same images
inverted, rotated or noised. The task suite measures transfer under each (its `target_shift`)."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF
from pydantic import Field

from headstart.ml.config import Settings
from headstart.ml.data.images import LabelledImages
from headstart.ml.errors import InvalidDataError


class DomainShift(Settings):
    invert: bool = False  # light strokes on dark become dark on light
    rotation_deg: float = Field(0.0, ge=-180, le=180)  # every image by this angle, counter-clockwise
    noise_std: float = Field(0.0, ge=0, le=1)  # Gaussian pixel noise, in units of the full 0-255 range
    seed: int = 0  # of the noise

    @property
    def is_identity(self) -> bool:
        return not self.invert and self.rotation_deg == 0 and self.noise_std == 0


def shift_domain(images: LabelledImages, shift: DomainShift, stream: int = 0) -> LabelledImages:
    """`images` with `shift` applied (rotation, then inversion, then noise drawn from `shift.seed` and
    `stream`, so a pool and its test split get different noise); labels and classes unchanged."""
    if shift.is_identity:
        return images
    if not isinstance(images.images, torch.Tensor):
        raise InvalidDataError("ingest.target_shift needs the target in memory; set the image folder's stream: false")
    shifted = images.images
    if shift.rotation_deg:
        shifted = TF.rotate(shifted, shift.rotation_deg, interpolation=TF.InterpolationMode.BILINEAR)
    if shift.invert:
        shifted = 255 - shifted
    if shift.noise_std:
        generator = torch.Generator().manual_seed(shift.seed * 1_000_003 + stream)
        noise = torch.randn(shifted.shape, generator=generator) * shift.noise_std * 255
        shifted = (shifted.float() + noise).round().clamp(0, 255).to(torch.uint8)
    return LabelledImages(shifted, images.labels, images.classes)
