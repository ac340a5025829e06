"""Handwritten digits: the UCI optical-recognition digits that scikit-learn installs (offline target)."""

import torch
from sklearn.datasets import load_digits

from headstart.ml.data.images import LabelledImages, block_counts_to_images


def load_handwritten_digits(image_size: int, channels: int) -> LabelledImages:
    """1,797 8×8 scans (counts 0–16) from 43 writers, resized exactly as the printed source is."""
    digits = load_digits()
    return LabelledImages(
        images=block_counts_to_images(torch.from_numpy(digits.images), image_size, channels),
        labels={"digit": torch.from_numpy(digits.target).long()},
        classes={"digit": [str(name) for name in digits.target_names]},
    )
