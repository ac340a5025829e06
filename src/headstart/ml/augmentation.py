"""The training images' augmentation: a random rotation and shift per image, drawn from the training's
own generator and applied in one batched affine resampling on the images' device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affines(count: int, generator: torch.Generator, max_rotation_deg: float, max_shift: float) -> torch.Tensor:
    """A random rotation and shift per image, as [count, 2, 3] affine matrices, drawn from `generator`."""
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(max_rotation_deg)
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * (2 * max_shift)  # grid units span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def apply_affines(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image resampled through its affine matrix, in one batched call on the images' device."""
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def augment_images(
    images: torch.Tensor, generator: torch.Generator, max_rotation_deg: float, max_shift: float
) -> torch.Tensor:
    """A random rotation and shift per image, in one batched affine resampling on the images' device."""
    return apply_affines(images, random_affines(len(images), generator, max_rotation_deg, max_shift))
