"""torchvision adapters on files written in MNIST's real on-disk (IDX) format; never the network."""

import struct

import numpy as np
import pytest

from headstart.ml.data.torchvision_sets import load_torchvision_dataset
from headstart.ml.errors import InvalidDataError


def write_mnist(root, count=12):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())
    return images


def test_mnist_from_disk_converted_to_size_and_channels(tmp_path):
    write_mnist(tmp_path)
    data = load_torchvision_dataset("MNIST", "test", tmp_path, download=False, image_size=14, channels=3, limit=10)
    assert data.images.shape == (10, 3, 14, 14)
    assert data.labels["label"].tolist() == list(range(10))
    assert data.classes["label"][0].startswith("0")


def test_missing_files_offline_say_what_to_fetch(tmp_path):
    with pytest.raises(InvalidDataError, match=r"'MNIST' \(split 'train'\) is not under .* download: true"):
        load_torchvision_dataset("MNIST", "train", tmp_path, download=False, image_size=28, channels=1)


def test_unknown_name_lists_supported_sets(tmp_path):
    with pytest.raises(InvalidDataError, match=r"unknown torchvision data set 'MNSIT'; supported: MNIST"):
        load_torchvision_dataset("MNSIT", "train", tmp_path, download=False, image_size=28, channels=1)
