"""One registry of backbones: `build_model({"library": ..., "name": ..., "in_channels": ..., "num_classes": ...})`.

Libraries: `headstart` (the small CNN of the default experiment, the pixel models, the multi-task
models), `torchvision` (every classifier of `torchvision.models.list_models()`), `timm` (every timm
model). A config without `library` (those stored before it existed) is read by its name. The config
is saved beside the weights, so a stored model rebuilds from it.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from headstart.ml.models.backbone import Backbone, DataConfig, block_count, block_parameters
from headstart.ml.models.pixels import PixelLinear, PixelNearestNeighbours
from headstart.ml.models.small_cnn import SmallCNN
from headstart.ml.models.torchvision_backbones import TorchvisionBackbone, torchvision_classifiers

Library = Literal["headstart", "torchvision", "timm"]
LIBRARIES: tuple[Library, ...] = ("headstart", "torchvision", "timm")
PIXEL_MODELS = {"pixel_linear": PixelLinear, "pixel_nearest_neighbours": PixelNearestNeighbours}
HEADSTART_MODELS = ("small_cnn", *PIXEL_MODELS, "boosted_vote", "hard_sharing", "soft_sharing")


def library_of(name: str) -> Library:
    """Which library a bare name belongs to: ours first, then torchvision's classifiers, else timm."""
    if name in HEADSTART_MODELS:
        return "headstart"
    return "torchvision" if name in torchvision_classifiers() else "timm"


def check_model_name(library: Library, name: str) -> None:
    """A clear error, before anything is built, for a name the library does not have."""
    if library == "headstart" and name not in HEADSTART_MODELS:
        raise ValueError(f"unknown headstart model '{name}'; known: {', '.join(HEADSTART_MODELS)}")
    if library == "torchvision" and name not in torchvision_classifiers():
        raise ValueError(
            f"unknown torchvision classifier '{name}'; "
            "torchvision.models.list_models(module=torchvision.models) lists them"
        )
    if library == "timm":
        import timm

        if not timm.is_model(name):
            raise ValueError(f"unknown timm model '{name}'; timm.list_models('{name[:4]}*') lists similar names")


def build_model(config: dict[str, Any]) -> nn.Module:
    settings = dict(config)
    name = settings.pop("name")
    library = settings.pop("library", None) or library_of(name)
    check_model_name(library, name)
    if library == "torchvision":
        return TorchvisionBackbone(name, **settings)
    if library == "timm":
        from headstart.ml.models.timm_backbones import TimmBackbone  # timm imports take a second

        return TimmBackbone(name, **settings)
    if name == "small_cnn":
        return SmallCNN(**settings)
    if name in PIXEL_MODELS:
        return PIXEL_MODELS[name](**settings)
    if name == "boosted_vote":  # TrAdaBoost's final hypothesis over a frozen body
        from headstart.ml.models.boosted_vote import BoostedVote

        return BoostedVote(**settings)
    from headstart.ml.models.multitask import build_multitask_model

    return build_multitask_model({"name": name, **settings})


__all__ = [
    "HEADSTART_MODELS",
    "LIBRARIES",
    "PIXEL_MODELS",
    "Backbone",
    "DataConfig",
    "SmallCNN",
    "TorchvisionBackbone",
    "block_count",
    "block_parameters",
    "build_model",
    "check_model_name",
    "library_of",
]
