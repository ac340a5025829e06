"""The one contract every backbone meets, and what the wrapped libraries' models share.

A backbone is a body, split into blocks in forward order (what transfer copies and freezes, what
advise scores), and a `head`, the task-specific classifier. torchvision and timm models are wrapped,
not rearranged: the library's module sits under `net` with its classifier removed, so its own
weight files load by renaming keys (`native_names`), and the wrapper applies the model's own
preprocessing (its data config: input size, mean/std, interpolation, centre crop) inside `forward`,
so training, evaluation, advice, prediction and the served model see the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from headstart.ml.models.heads import make_head


@dataclass(frozen=True)
class DataConfig:
    """The model's own input form, as timm's `resolve_data_config` or a torchvision weights enum's
    `transforms()` states it. `crop_pct`: the centre share of the image kept before resizing."""

    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    def for_channels(self, channels: int) -> DataConfig:
        """Mean and std for a grey (or other) input: the RGB values averaged, as the first conv's weights are summed."""
        if len(self.mean) == channels:
            return self
        mean, std = sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)
        return DataConfig(self.input_size, (mean,) * channels, (std,) * channels, self.interpolation, self.crop_pct)


@runtime_checkable
class Backbone(Protocol):
    """What transfer, training, advice and serving rely on, whatever library built the model."""

    num_features: int  # width of `forward_features`' output, the head's input
    head: nn.Module

    def block_prefixes(self) -> list[tuple[str, ...]]:
        """State-dict key prefixes of each body block, general first (copy and freeze select by these)."""
        ...

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logit features, one vector per image, from images scaled to [0, 1]."""
        ...

    def forward_block_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each block's output pooled the way the model pools (spatial mean, class token or token mean)."""
        ...

    def reset_classifier(self, num_classes: int, hidden: Sequence[int] = ()) -> None: ...


def block_count(model: nn.Module) -> int:
    return len(model.block_prefixes())


def block_parameters(model: nn.Module, index: int) -> list[nn.Parameter]:
    """The trainable parameters of body block `index` (negative counts from the last)."""
    prefixes = model.block_prefixes()[index]
    return [p for name, p in model.named_parameters() if name.startswith(prefixes) and p.requires_grad]


class Preprocess(nn.Module):
    """[0, 1] images → the model's input: centre crop, resize (the model's interpolation), normalise."""

    def __init__(self, config: DataConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(config.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size, crop = self.config.input_size, self.config.crop_pct
        if crop < 1.0:
            height, width = images.shape[-2:]
            keep_h, keep_w = max(1, round(height * crop)), max(1, round(width * crop))
            top, left = (height - keep_h) // 2, (width - keep_w) // 2
            images = images[..., top : top + keep_h, left : left + keep_w]
        if images.shape[-2:] != (size, size):
            mode = "bicubic" if self.config.interpolation == "bicubic" else "bilinear"
            images = F.interpolate(images, size=(size, size), mode=mode, align_corners=False, antialias=True)
        return (images - self.mean) / self.std


def pool_block_output(output: torch.Tensor, token_pool: str, prefix_tokens: int, channels_last: bool) -> torch.Tensor:
    """One vector per image from a block's output: the spatial mean of a feature map (NCHW, or NHWC
    where the model keeps maps channels-last), or of a token sequence (N, L, D) its class token
    (`token_pool: token`) or the mean of its patch tokens."""
    if output.dim() == 4:
        return output.mean(dim=(1, 2) if channels_last else (2, 3))
    if output.dim() == 3:
        return output[:, 0] if token_pool == "token" else output[:, prefix_tokens:].mean(dim=1)
    return output.flatten(1)


def group_state_keys(model: nn.Module, parameter_groups: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """Parameter-name groups → state-key prefixes: each parameter, plus the buffers of its module
    (batch-norm statistics go with their weights)."""
    modules_of = {}
    for index, names in enumerate(parameter_groups):
        for name in names:
            modules_of.setdefault(name.rpartition(".")[0], index)
    grouped: list[list[str]] = [list(names) for names in parameter_groups]
    for name, _ in model.named_buffers():
        owner = name.rpartition(".")[0]
        if owner in modules_of:
            grouped[modules_of[owner]].append(name)
    return [tuple(names) for names in grouped]


class WrappedBackbone(nn.Module):
    """A library model under `net` (its classifier removed, so `net(x)` gives pre-logit features),
    our `head`, and the model's preprocessing. Subclasses find the blocks and the native names."""

    token_pool = "avg"  # how a token sequence is pooled per block: "token" (class token) or "avg"
    prefix_tokens = 0  # class / register tokens before the patch tokens
    channels_last_maps = False  # whether the model's feature maps are NHWC (Swin)

    def __init__(
        self,
        net: nn.Module,
        num_features: int,
        data_config: DataConfig,
        num_classes: int,
        head_hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.preprocess = Preprocess(data_config)
        self.net = net
        self.num_features = num_features
        self.data_config = data_config
        self.head = make_head(num_features, num_classes, head_hidden)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))

    def reset_classifier(self, num_classes: int, hidden: Sequence[int] = ()) -> None:
        self.head = make_head(self.num_features, num_classes, hidden)

    def block_prefixes(self) -> list[tuple[str, ...]]:
        return self._block_prefixes

    def block_output_modules(self) -> list[nn.Module]:
        """The module whose output stands for each block: the last of the block's modules to run."""
        return [self.net.get_submodule(name) for name in self._block_outputs]

    def forward_prefix(self, images: torch.Tensor, blocks: int) -> torch.Tensor:
        """The output of the first `blocks` blocks (what headstart.ml.feature_cache keeps): the
        library's forward runs until that block's output module, and stops there. The shapes of the
        earlier blocks' outputs are noted for `forward_after`'s stand-ins."""
        names = self._block_outputs[:blocks]
        captured: list[torch.Tensor] = []
        self._prefix_shapes: dict[str, tuple[int, ...]] = getattr(self, "_prefix_shapes", {})

        def noting(name: str):
            def hook(_module, _inputs, output):
                self._prefix_shapes[name] = tuple(output.shape[1:])
                if name == names[-1]:
                    captured.append(output)
                    raise _PrefixComputed

            return hook

        handles = [self.net.get_submodule(name).register_forward_hook(noting(name)) for name in names]
        try:
            self.forward_features(images)
        except _PrefixComputed:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return captured[0]

    def forward_after(self, hidden: torch.Tensor, blocks: int) -> torch.Tensor:
        """The logits from `forward_prefix`'s output: the output modules of the first `blocks` blocks
        stand aside (the earlier ones give zeros of their output's shape, the last replays `hidden`)
        while the library's own forward runs on a small blank input, so whatever it does between
        blocks still happens; headstart.ml.feature_cache checks the result against `forward`."""
        names = self._block_outputs[:blocks]
        stand_ins = {name: _Blank(self._prefix_shapes[name]) for name in names[:-1]} | {names[-1]: _Replay(hidden)}
        originals = {name: _swap(self.net, name, module) for name, module in stand_ins.items()}
        side = getattr(self, "_blank_side", 8)  # what the layers before the first output module see
        try:
            blank = hidden.new_zeros(len(hidden), len(self.data_config.mean), side, side)
            try:
                return self.head(self.net(blank))
            except (RuntimeError, AssertionError, ValueError):  # a check of the input's size
                if side == self.data_config.input_size:
                    raise
                self._blank_side = self.data_config.input_size  # a model that needs its own input size
                return self.head(self.net(blank.new_zeros(*blank.shape[:2], self._blank_side, self._blank_side)))
        finally:
            for name, module in originals.items():
                _swap(self.net, name, module)

    def forward_block_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []

        def keep(_module, _inputs, output):
            output = output[0] if isinstance(output, tuple) else output
            outputs.append(pool_block_output(output, self.token_pool, self.prefix_tokens, self.channels_last_maps))

        handles = [module.register_forward_hook(keep) for module in self.block_output_modules()]
        try:
            self.forward_features(images)
        finally:
            for handle in handles:
                handle.remove()
        return outputs


class _PrefixComputed(Exception):
    """Raised from a forward hook to end a forward pass once the prefix's output is in hand."""


class _Replay(nn.Module):
    """Stands in for the last frozen block's output module: the output computed before."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, *_args, **_kwargs) -> torch.Tensor:
        return self.output


class _Blank(nn.Module):
    """Stands in for an earlier block's output module: zeros of that output's shape, whatever it gets."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, inputs, *_args, **_kwargs) -> torch.Tensor:
        return inputs.new_zeros(len(inputs), *self.shape)


def _swap(root: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Put `module` at `name` under `root` (a Sequential's or ModuleList's "3" as well); return what was there."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    previous = parent.get_submodule(child)
    setattr(parent, child, module)
    return previous


def representative_module(model: nn.Module, owners: Sequence[str]) -> str:
    """The module whose output stands for a block made of modules `owners` (names under `model`):
    their deepest common ancestor, or, where they share none below the root, the last of them to run."""
    owners = [owner for owner in owners if owner]
    common = owners[0].split(".")
    for owner in owners[1:]:
        parts = owner.split(".")
        length = next((i for i, (a, b) in enumerate(zip(common, parts)) if a != b), min(len(common), len(parts)))
        common = common[:length]
    if common:
        return ".".join(common)
    order = {name: index for index, (name, _) in enumerate(model.named_modules())}
    return max(owners, key=lambda owner: order[owner])
