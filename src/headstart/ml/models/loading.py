"""Source weights from elsewhere: a torchvision weights enum, or a local checkpoint file.

Everything is loaded with `weights_only=True` (no pickle code runs) and renamed to our layout;
torchvision-format keys (`conv1.weight`, `features.0.0.weight`, ...) are accepted as they are.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import safetensors.torch
import torch
import torchvision
from torch import nn

from headstart.ml.errors import InvalidDataError
from headstart.ml.models import build_model, library_of
from headstart.ml.transfer import load_full_state


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the torch cache nor downloadable (we are offline)."""


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (plain dict, or under 'state_dict'/'model')."""
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path)
        except Exception as error:  # safetensors raises its own SafetensorError
            raise InvalidDataError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise InvalidDataError(
            f"{path}: not a plain state dict that loads with weights_only=True ({str(error).splitlines()[0]})"
        ) from error
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InvalidDataError(f"{path}: expected a dict of tensors (a state dict)")
    return {key.removeprefix("module."): tensor for key, tensor in loaded.items()}  # DDP checkpoints


def to_our_names(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a library's own keys (torchvision's `conv1.weight`, timm's `patch_embed.proj.weight`) to
    the backbone's (`net.…`, the output layer `head.…`); keys already in our layout pass unchanged."""
    names = getattr(model, "native_names", {})
    return {names.get(key, key): tensor for key, tensor in state.items()}


def adapt_input_channels(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fit the first convolution of RGB weights to a grey (or other) input with timm's `adapt_input_conv`
    (one channel: the sum over RGB; more: RGB repeated and rescaled)."""
    first = next(key for key, tensor in model.state_dict().items() if tensor.ndim == 4)
    wanted, weight = model.state_dict()[first].shape[1], state.get(first)
    if weight is None or weight.ndim != 4 or weight.shape[1] == wanted:
        return state
    from timm.models import adapt_input_conv

    return {**state, first: adapt_input_conv(wanted, weight, base_chans=weight.shape[1])}


def head_classes(state: dict[str, torch.Tensor]) -> int:
    """Classes of a checkpoint's output layer (the last `head.*weight`)."""
    weights = [tensor for key, tensor in state.items() if key.startswith("head.") and key.endswith("weight")]
    if not weights:
        raise InvalidDataError("checkpoint has no output layer ('head.*weight', 'fc.weight' or 'classifier.*.weight')")
    return int(weights[-1].shape[0])


def load_torchvision_weights(weights_name: str) -> tuple[dict[str, torch.Tensor], int]:
    """(state dict, number of classes) of a pinned torchvision weights enum, e.g. 'ResNet18_Weights.IMAGENET1K_V1'."""
    try:
        weights = torchvision.models.get_weight(weights_name)
    except (ValueError, KeyError, AttributeError) as error:
        raise InvalidDataError(f"pretrain.weights: unknown torchvision weights '{weights_name}' ({error})") from error
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    try:
        state = weights.get_state_dict(progress=False, map_location="cpu", weights_only=True)
    except OSError as error:  # URLError is an OSError
        raise WeightsUnavailableError(
            f"{weights_name} is not in the torch cache ({cached}) and cannot be downloaded ({error}). "
            'On a machine with internet run `python -c "import torchvision; '
            f"torchvision.models.get_weight('{weights_name}')"
            f'.get_state_dict()"`, copy {cached.name} into {cached.parent} here (or set TORCH_HOME), '
            "or point pretrain.checkpoint at a local file."
        ) from error
    return state, len(weights.meta["categories"])


def missing_weights_message(path: Path, config: dict[str, Any]) -> str:
    """Where the weights file should be, and how to make it on a machine with internet (never fetched here)."""
    name = config["name"]
    library = config.get("library") or library_of(name)
    if library == "timm":
        how = (
            f"python -c \"import timm, safetensors.torch; m = timm.create_model('{name}', pretrained=True); "
            f"safetensors.torch.save_file(m.state_dict(), '{path.name}')\""
        )
    elif library == "torchvision":
        how = (
            f"python -c \"import torch, torchvision; w = torchvision.models.get_model_weights('{name}').DEFAULT; "
            f"torch.save(w.get_state_dict(), '{path.name}')\""
        )
    else:
        how = "kedro run --pipelines=pretrain (headstart's own models are trained, not downloaded)"
    return (
        f"pretrain.checkpoint: no weights file at {path}. Put the {library} weights of {name} there "
        f"(.safetensors, or a .pth/.bin state dict). On a machine with internet: {how}, then copy the file here."
    )


def load_source_model(
    init: str, origin: str, config_for: Callable[[int], dict[str, Any]]
) -> tuple[dict[str, Any], nn.Module]:
    """(config, model) from a torchvision weights enum (`init: torchvision_weights`) or a local checkpoint,
    renamed to our layout and fitted to the input channels. `config_for(num_classes)` is the architecture."""
    if init == "torchvision_weights":
        state, num_classes = load_torchvision_weights(origin)
        config = config_for(num_classes)
    else:
        path = Path(origin)
        if not path.is_file():
            raise InvalidDataError(missing_weights_message(path, config_for(1)))
        described = path.with_suffix(".json")  # our own models carry their config beside the weights
        state = read_state_file(path)
        in_channels = config_for(1)["in_channels"]
        if described.is_file():
            config = {**json.loads(described.read_text())["config"], "in_channels": in_channels}
        else:
            probe = build_model(config_for(1))
            config = config_for(head_classes(to_our_names(probe, state)))
    model = build_model(config)
    load_full_state(model, adapt_input_channels(model, to_our_names(model, state)))
    return config, model
