"""Where a training runs and in which precision: the device a config names, bf16 autocast where it
pays, whether the training images fit on the accelerator, where a model's tensors are."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from headstart.ml.config import check_device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(name))


def trains_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether `precision` means bf16 autocast on `device` (see TrainConfig.precision)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)  # private, hence the fallback
    return device.type == "cpu" and amx()


def fits_on_device(images: torch.Tensor, device: torch.device, share: float = 0.5) -> bool:
    """Whether the uint8 training images fit in `share` of the accelerator's free memory (images
    streamed from disk stay there)."""
    images = getattr(images, "views", images)  # cached features (headstart.ml.feature_cache) are a tensor too
    if not isinstance(images, torch.Tensor):
        return False
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return images.element_size() * images.nelement() < share * free


def model_device(model: nn.Module) -> torch.device:
    """Where the model's tensors are; a k-NN model has buffers and no parameters."""
    return next(itertools.chain(model.parameters(), model.buffers())).device
