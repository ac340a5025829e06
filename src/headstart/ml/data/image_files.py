"""Images that stay on disk: a folder larger than memory, decoded and resized per batch.

`ImageFiles` stands where a uint8 N×C×H×W tensor stands in `LabelledImages`: `len`, `shape`, and
indexing (an int, a slice, an index tensor) that returns decoded uint8 tensors, by the same decoder
ingest uses for in-memory folders (`read_image`), so the two forms give the same pixels. `subset`
keeps a selection on disk (splits). Training reads it through a `torch.utils.data.DataLoader` whose
workers decode the batches of the epoch's order (`batches`); the in-memory tensor stays the fast
path for sets that fit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from headstart.ml.data.image_folder import read_image


class ImageFiles:
    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, paths: Sequence[str | Path], size: int, channels: int, workers: int | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.size, self.channels = int(size), int(channels)
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), self.channels, self.size, self.size))

    def dim(self) -> int:
        return 4

    def decode(self, position: int) -> torch.Tensor:
        return read_image(Path(self.paths[position]), self.size, self.channels)

    def __getitem__(self, index) -> torch.Tensor:
        """Decoded uint8 images, as indexing a tensor would give them."""
        if isinstance(index, int):
            return self.decode(index)
        positions = range(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        if not positions:
            return torch.zeros((0, self.channels, self.size, self.size), dtype=torch.uint8)
        return torch.stack([self.decode(p) for p in positions])

    def subset(self, index) -> ImageFiles:
        """A selection, still on disk."""
        positions = range(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        return ImageFiles([self.paths[p] for p in positions], self.size, self.channels, self.workers)

    def join(self, other: ImageFiles) -> ImageFiles:
        return ImageFiles(self.paths + other.paths, self.size, self.channels, self.workers)

    def load(self) -> torch.Tensor:
        """Every image in memory (for a selection small enough, e.g. the k labels per class)."""
        return torch.cat(
            list(self.batches([torch.arange(i, min(i + 256, len(self))) for i in range(0, len(self), 256)]))
        )

    def to(self, *_, **__) -> ImageFiles:
        return self  # stays on disk; batches go to the device as they are decoded

    def pin_memory(self) -> ImageFiles:
        return self

    def batches(self, batches: Sequence[torch.Tensor], pin_memory: bool = False) -> Iterator[torch.Tensor]:
        """The decoded images of each batch of positions, in order, decoded by the DataLoader's workers."""
        workers = self.workers if len(batches) > 1 else 0
        loader = DataLoader(
            _Decoded(self),
            batch_sampler=[b.tolist() for b in batches],
            num_workers=workers,
            pin_memory=pin_memory,
            persistent_workers=False,
        )
        yield from loader

    def fingerprint_bytes(self) -> bytes:
        """What the images are made from, for fingerprints: the paths, sizes and modification times."""
        digest = hashlib.sha256(f"{self.size}x{self.channels}".encode())
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        return digest.digest()

    def to_dict(self) -> dict:
        return {"paths": self.paths, "size": self.size, "channels": self.channels}


class _Decoded(Dataset):
    def __init__(self, files: ImageFiles) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.files.decode(position)


def decoded_bytes(count: int, size: int, channels: int) -> int:
    return count * size * size * channels
