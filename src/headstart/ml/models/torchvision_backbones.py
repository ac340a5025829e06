"""Every torchvision classifier (`torchvision.models.list_models(module=torchvision.models)`) as a Backbone.

The torchvision module is kept whole under `net`, its output layer replaced by `Identity` (so
`net(x)` returns the pre-logit features, through any layers before the output, e.g. VGG's or
MobileNet's), and our `head` is the new output layer. The body's blocks are found from the module
tree, since torchvision has no grouping API: descend into the container that holds nearly all the
body's parameters (VGG's `features`, a ViT's `encoder.layers`), keep what runs before it as a stem
block and what runs after it (final norms, the layers before the output) with the last block;
at that level each parameterised sub-module is a block, and runs of plain layers (convolution,
norm, activation) are closed by a pooling layer, so VGG's blocks end where its resolution halves.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torchvision
from torch import nn

from headstart.ml.models.backbone import DataConfig, WrappedBackbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOMINANT_SHARE = 0.9  # a container holding this share of a level's parameters is descended into
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
WITHOUT_AUXILIARY_HEADS = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}


@cache
def torchvision_classifiers() -> tuple[str, ...]:
    """Names of torchvision's image classifiers (not its detection, segmentation or video models)."""
    return tuple(torchvision.models.list_models(module=torchvision.models))


def torchvision_data_config(name: str, input_size: int | None) -> DataConfig:
    """The preprocessing of the model's default weights (`Weights.DEFAULT.transforms()`): crop size,
    resize size (so the centre crop share), mean, std and interpolation; ImageNet's at 224 px if it has none."""
    try:
        transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        crop, resize = transforms.crop_size[0], transforms.resize_size[0]
        config = DataConfig(
            crop, tuple(transforms.mean), tuple(transforms.std), transforms.interpolation.value, crop / resize
        )
    except (ValueError, AttributeError, KeyError):
        config = DataConfig(224, IMAGENET_MEAN, IMAGENET_STD, "bilinear", 224 / 256)
    if input_size is not None:
        config = DataConfig(input_size, config.mean, config.std, config.interpolation, config.crop_pct)
    return config


def _output_layer(net: nn.Module, num_classes: int) -> str:
    """The layer that makes the logits: the last linear (or 1×1 convolution) with `num_classes` outputs."""
    found = [
        name
        for name, module in net.named_modules()
        if (isinstance(module, nn.Linear) and module.out_features == num_classes)
        or (isinstance(module, nn.Conv2d) and module.out_channels == num_classes)
    ]
    if not found:
        raise ValueError(f"found no output layer with {num_classes} outputs")
    return found[-1]


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _group_layers(level: nn.Module, prefix: str) -> list[list[str]]:
    """Blocks at one level: each parameterised container alone; runs of plain layers closed by a pooling
    layer (or the next container); a run after the last container joins the block before it."""
    blocks: list[list[str]] = []
    run: list[str] = []
    for name, child in level.named_children():
        path = f"{prefix}{name}"
        if list(child.children()):
            if run:
                blocks.append(run)
                run = []
            if _parameter_count(child):
                blocks.append([path])
            continue
        run.append(path)
        if isinstance(child, POOLING):
            blocks.append(run)
            run = []
    if run and blocks:
        blocks[-1].extend(run)
    elif run:
        blocks.append(run)
    return [block for block in blocks if any(_parameter_count(level.get_submodule(p[len(prefix) :])) for p in block)]


def find_blocks(net: nn.Module, classifier_top: str) -> list[list[str]]:
    """Module (and loose parameter) names of each body block, in forward order; see the module docstring."""
    stem: list[str] = []
    tail: list[str] = [classifier_top] if _parameter_count(net.get_submodule(classifier_top)) else []
    level, prefix = net, ""
    while True:
        stem += [f"{prefix}{name}" for name, _ in level.named_parameters(recurse=False)]
        children = [(n, c) for n, c in level.named_children() if f"{prefix}{n}" != classifier_top]
        total = sum(_parameter_count(c) for _, c in children) or 1
        dominant = next(
            (n for n, c in children if list(c.children()) and _parameter_count(c) >= DOMINANT_SHARE * total), None
        )
        if dominant is None:
            break
        names = [n for n, _ in children]
        before, after = names[: names.index(dominant)], names[names.index(dominant) + 1 :]
        stem += [f"{prefix}{n}" for n in before if _parameter_count(level.get_submodule(n))]
        tail = [f"{prefix}{n}" for n in after if _parameter_count(level.get_submodule(n))] + tail
        level, prefix = level.get_submodule(dominant), f"{prefix}{dominant}."
    blocks = (
        _group_layers(level, prefix)
        if level is not net
        else [block for block in _group_layers(net, "") if block != [classifier_top]]
    )
    if stem:
        blocks.insert(0, stem)
    blocks[-1].extend(tail)
    return blocks


def _create(name: str, input_size: int | None) -> nn.Module:
    """The architecture, at `input_size` where it is built for one size (ViT: `image_size`, MaxViT: `input_size`)."""
    options = WITHOUT_AUXILIARY_HEADS.get(name, {})
    if input_size is not None:
        for size_argument in ("image_size", "input_size"):
            try:
                return torchvision.models.get_model(name, weights=None, **options, **{size_argument: input_size})
            except TypeError:  # the architecture takes any size
                continue
    return torchvision.models.get_model(name, weights=None, **options)


def _with_input_channels(net: nn.Module, in_channels: int) -> None:
    """Replace the first convolution by one taking `in_channels` (its weights come from the checkpoint,
    adapted from RGB by `loading.adapt_input_channels`)."""
    name, conv = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels == in_channels:
        return
    replacement = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    net.set_submodule(name, replacement)


class TorchvisionBackbone(WrappedBackbone):
    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        num_classes: int = 1000,
        head_hidden: Sequence[int] = (),
        input_size: int | None = None,
    ) -> None:
        net = _create(name, input_size)
        native_keys = list(net.state_dict())
        output_name = _output_layer(net, 1000)
        output = net.get_submodule(output_name)
        if isinstance(output, nn.Linear):
            num_features = output.in_features
            net.set_submodule(output_name, nn.Identity())
        else:  # SqueezeNet: a 1×1 convolution, ReLU and pooling make the logits; keep the pooled features
            num_features = output.in_channels
            output_name = output_name.rpartition(".")[0]
            net.set_submodule(output_name, nn.AdaptiveAvgPool2d(1))
        _with_input_channels(net, in_channels)
        data_config = torchvision_data_config(name, input_size).for_channels(in_channels)
        super().__init__(net, num_features, data_config, num_classes, head_hidden)
        self.name = name
        self.token_pool = "token" if isinstance(net, torchvision.models.VisionTransformer) else "avg"
        self.channels_last_maps = isinstance(net, torchvision.models.SwinTransformer)
        blocks = find_blocks(net, output_name.split(".")[0])
        parameters = dict(net.named_parameters())
        self._block_prefixes = [
            tuple(f"net.{part}" if part in parameters else f"net.{part}." for part in block) for block in blocks
        ]
        self._block_outputs = [next(p for p in reversed(block) if p not in parameters) for block in blocks]
        ours = set(self.state_dict())
        self.native_names = {key: f"net.{key}" for key in native_keys if f"net.{key}" in ours}
        if not head_hidden and isinstance(output, nn.Linear):
            for key in native_keys:
                if key.startswith(f"{output_name}."):
                    self.native_names[key] = "head." + key.removeprefix(f"{output_name}.").rpartition(".")[2]
