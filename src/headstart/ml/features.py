"""What a source model makes of images, block by block: the inputs of every score that advises before training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from headstart.ml.training import scale_images


def block_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 512
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per body block (`model.blocks`, general first) its output, global-average-pooled to one vector per
    image, and the source head's softmax over the source classes (what LEEP and NCE read). One forward
    pass in eval mode, so batch norms use the source's statistics, as a frozen transfer would."""
    outputs: dict[int, list[torch.Tensor]] = {index: [] for index in range(len(model.blocks))}

    def keep(index: int):
        def hook(_module, _inputs, output):
            pooled = output.mean(dim=(2, 3)) if output.dim() == 4 else output.flatten(1)
            outputs[index].append(pooled.float().cpu())

        return hook

    handles = [block.register_forward_hook(keep(index)) for index, block in enumerate(model.blocks)]
    model.eval()
    probabilities = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                logits = model(scale_images(images[start : start + batch_size]))
                probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
    finally:
        for handle in handles:
            handle.remove()
    per_block = [torch.cat(outputs[index]).numpy() for index in range(len(model.blocks))]
    return per_block, torch.cat(probabilities).numpy()
