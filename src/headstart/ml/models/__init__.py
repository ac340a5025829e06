"""Backbones with a timm-style split: `blocks` (the body, in order), `head`, `forward_features`, `reset_classifier`.

A model is rebuilt from a JSON-able architecture config, e.g. {"name": "small_cnn", "in_channels": 1,
"num_classes": 10}; that config is saved beside the weights.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from headstart.ml.models.pixels import PixelLinear, PixelNearestNeighbours
from headstart.ml.models.small_cnn import SmallCNN
from headstart.ml.models.torchvision_backbones import TORCHVISION_ARCHITECTURES, TorchvisionBackbone

ARCHITECTURES = ("small_cnn", *TORCHVISION_ARCHITECTURES)
PIXEL_MODELS = {"pixel_linear": PixelLinear, "pixel_nearest_neighbours": PixelNearestNeighbours}


def build_model(config: dict[str, Any]) -> nn.Module:
    settings = dict(config)
    name = settings.pop("name")
    if name == "small_cnn":
        return SmallCNN(**settings)
    if name in TORCHVISION_ARCHITECTURES:
        return TorchvisionBackbone(name, **settings)
    if name in PIXEL_MODELS:
        return PIXEL_MODELS[name](**settings)
    if name == "boosted_vote":  # TrAdaBoost's final hypothesis over a frozen body
        from headstart.ml.boosting import BoostedVote

        return BoostedVote(**settings)
    if name in ("hard_sharing", "soft_sharing"):
        from headstart.ml.models.multitask import build_multitask_model

        return build_multitask_model(config)
    raise ValueError(f"unknown architecture '{name}'; known: {', '.join(ARCHITECTURES)}")


__all__ = ["ARCHITECTURES", "PIXEL_MODELS", "SmallCNN", "TorchvisionBackbone", "build_model"]
