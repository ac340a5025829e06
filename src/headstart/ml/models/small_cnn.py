"""The default backbone: a small CNN for 28×28 digits, sized to train in seconds on a CPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from headstart.ml.models.heads import make_head


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """`blocks[i]` are the transferable units, general first; `head` is the task-specific classifier."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__()
        channels = (in_channels, *widths)
        self.blocks = nn.ModuleList(conv_block(a, b) for a, b in zip(channels, channels[1:]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[-1]
        self.head = make_head(self.num_features, num_classes, head_hidden)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            images = block(images)
        return self.pool(images).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))

    def forward_prefix(self, images: torch.Tensor, blocks: int) -> torch.Tensor:
        """The output of the first `blocks` blocks (a frozen prefix's, cached: headstart.ml.feature_cache)."""
        for block in self.blocks[:blocks]:
            images = block(images)
        return images

    def forward_after(self, hidden: torch.Tensor, blocks: int) -> torch.Tensor:
        """The logits from the output of the first `blocks` blocks."""
        for block in self.blocks[blocks:]:
            hidden = block(hidden)
        return self.head(self.pool(hidden).flatten(1))

    def block_prefixes(self) -> list[tuple[str, ...]]:
        return [(f"blocks.{index}.",) for index in range(len(self.blocks))]

    def forward_block_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        pooled = []
        for block in self.blocks:
            images = block(images)
            pooled.append(images.mean(dim=(2, 3)))
        return pooled

    def reset_classifier(self, num_classes: int, hidden: Sequence[int] = ()) -> None:
        self.head = make_head(self.num_features, num_classes, hidden)
