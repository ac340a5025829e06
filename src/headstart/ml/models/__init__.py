"""Backbones with a timm-style split: `blocks` (the body, in order), `head`, `forward_features`, `reset_classifier`."""

from headstart.ml.models.small_cnn import SmallCNN, build_model

__all__ = ["SmallCNN", "build_model"]
