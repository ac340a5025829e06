"""Every timm model as a Backbone, built offline (`pretrained=False`; weights come from a local file).

timm gives what torchvision lacks: `reset_classifier(0)` leaves a model whose forward returns the
pooled pre-logit features, `group_matcher(coarse=True)` names its blocks in order (the same groups
timm's layer-wise learning-rate decay uses), `resolve_data_config` its preprocessing, and
`adapt_input_conv` fits RGB weights to another number of input channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
from timm.models import _manipulate

from headstart.ml.models.backbone import DataConfig, WrappedBackbone, group_state_keys, representative_module


def timm_data_config(net, input_size: int | None) -> DataConfig:
    resolved = timm.data.resolve_data_config({}, model=net)
    size = input_size or int(resolved["input_size"][-1])
    mean, std = tuple(resolved["mean"]), tuple(resolved["std"])
    return DataConfig(size, mean, std, resolved["interpolation"], resolved["crop_pct"])


def create_timm_model(name: str, in_channels: int, input_size: int | None):
    """The model with no classifier, at `input_size` where its architecture takes an image size (ViTs, Swin)."""
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model '{name}'; see timm.list_models()")
    common = {"pretrained": False, "num_classes": 0, "in_chans": in_channels}
    if input_size is not None:
        try:
            return timm.create_model(name, img_size=input_size, **common)
        except TypeError:  # a convolutional net takes any size; it has no img_size argument
            pass
    return timm.create_model(name, **common)


class TimmBackbone(WrappedBackbone):
    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        num_classes: int = 1000,
        head_hidden: Sequence[int] = (),
        input_size: int | None = None,
    ) -> None:
        net = create_timm_model(name, in_channels, input_size)
        data_config = timm_data_config(net, input_size).for_channels(in_channels)
        super().__init__(net, net.num_features, data_config, num_classes, head_hidden)
        self.name = name
        self.token_pool = "token" if getattr(net, "global_pool", None) == "token" else "avg"
        self.prefix_tokens = int(getattr(net, "num_prefix_tokens", 0) or 0)
        self.channels_last_maps = getattr(net, "output_fmt", "NCHW") == "NHWC"
        groups = _manipulate.group_parameters(net, net.group_matcher(coarse=True))
        ordered = [groups[key] for key in sorted(groups)]
        self._block_prefixes = [tuple(f"net.{key}" for key in keys) for keys in group_state_keys(net, ordered)]
        self._block_outputs = [representative_module(net, [k.rpartition(".")[0] for k in keys]) for keys in ordered]
        classifier = net.pretrained_cfg.get("classifier")  # the output layer's name in timm's checkpoints
        self.native_names = {key: f"net.{key}" for key in net.state_dict()}
        if classifier and not head_hidden:
            self.native_names.update({f"{classifier}.weight": "head.weight", f"{classifier}.bias": "head.bias"})
