"""torchvision classifiers (resnet18/50, mobilenet_v3_small, efficientnet_b0) in our backbone layout.

The torchvision modules themselves are rearranged, not copied: `blocks` are the stem and stages
(resnet) or `features[i]` (mobilenet, efficientnet), `neck` the classifier layers before the last,
`head` the last linear layer. `torchvision_names` maps torchvision's state-dict keys to ours, so
torchvision weights and checkpoints load unchanged. Inputs arrive in [0, 1]; the model applies
ImageNet's normalisation itself and, with `input_size`, resizes (small digits through a stem built
for 224-pixel photos leave a 1×1 map).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from headstart.ml.models.heads import make_head

TORCHVISION_ARCHITECTURES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _with_input_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )


class TorchvisionBackbone(nn.Module):
    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        num_classes: int = 1000,
        head_hidden: Sequence[int] = (),
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        if name not in TORCHVISION_ARCHITECTURES:
            raise ValueError(
                f"unknown torchvision architecture '{name}'; known: {', '.join(TORCHVISION_ARCHITECTURES)}"
            )
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if name.startswith("resnet"):
            net.conv1 = _with_input_channels(net.conv1, in_channels)
            blocks = [
                nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
                net.layer1,
                net.layer2,
                net.layer3,
                net.layer4,
            ]
            neck, last = nn.Identity(), net.fc
        else:
            net.features[0][0] = _with_input_channels(net.features[0][0], in_channels)
            blocks = list(net.features)
            neck, last = net.classifier[:-1], net.classifier[-1]
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.neck = neck
        self.head = last
        self.num_features = last.in_features
        self.input_size = input_size
        mean = torch.tensor(IMAGENET_MEAN if in_channels == 3 else [sum(IMAGENET_MEAN) / 3] * in_channels)
        std = torch.tensor(IMAGENET_STD if in_channels == 3 else [sum(IMAGENET_STD) / 3] * in_channels)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)
        ours = {id(tensor): key for key, tensor in self.state_dict(keep_vars=True).items()}
        self.torchvision_names = {key: ours[id(tensor)] for key, tensor in net.state_dict(keep_vars=True).items()}
        if head_hidden:
            self.reset_classifier(num_classes, head_hidden)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        images = (images - self.mean) / self.std
        if self.input_size and images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        for block in self.blocks:
            images = block(images)
        return self.neck(self.pool(images).flatten(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))

    def reset_classifier(self, num_classes: int, hidden: Sequence[int] = ()) -> None:
        self.head = make_head(self.num_features, num_classes, hidden)
