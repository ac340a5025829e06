"""What a source model makes of images, block by block: the inputs of every score that advises before training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from headstart.ml.training import image_batches, scale_images


def block_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 512
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per body block (general first) its output pooled to one vector per image the way the model pools
    (a feature map's spatial mean; a ViT's class token or token mean), and the source head's softmax
    over the source classes (what LEEP and NCE read). In eval mode, so batch norms use the source's
    statistics, as a frozen transfer would."""
    model.eval()
    per_block: list[list[torch.Tensor]] = []
    probabilities = []
    with torch.no_grad():
        for raw in image_batches(images, batch_size):
            batch = scale_images(raw)
            pooled = model.forward_block_features(batch)
            per_block = per_block or [[] for _ in pooled]
            for index, vectors in enumerate(pooled):
                per_block[index].append(vectors.float().cpu())
            probabilities.append(torch.softmax(model(batch).float(), dim=1).cpu())
    return [torch.cat(vectors).numpy() for vectors in per_block], torch.cat(probabilities).numpy()
