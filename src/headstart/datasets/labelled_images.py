"""Kedro dataset for `LabelledImages`: one safetensors file, class names in its metadata.

kedro-datasets' SafetensorsDataset stores bare tensors; an image set also needs its task order and
class names, which safetensors keeps in the header's `__metadata__`. No pickle anywhere.
"""

from __future__ import annotations

import json
from typing import Any

import safetensors.torch

from headstart.datasets.versioned_files import VersionedFileDataset
from headstart.ml.data.image_files import ImageFiles
from headstart.ml.data.images import LabelledImages


def safetensors_metadata(raw: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's JSON header (8-byte little-endian length first)."""
    header_length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + header_length]).get("__metadata__", {})


class LabelledImagesDataset(VersionedFileDataset):
    def load(self) -> LabelledImages:
        with self._fs.open(self._load_path(), "rb") as file:
            raw = file.read()
        tensors = safetensors.torch.load(raw)
        metadata = safetensors_metadata(raw)
        classes = json.loads(metadata["classes"])
        on_disk = json.loads(metadata["image_files"]) if "image_files" in metadata else None
        return LabelledImages(
            images=ImageFiles(**on_disk) if on_disk else tensors["images"],
            labels={task: tensors[f"labels.{task}"] for task in classes},
            classes=classes,
        )

    def save(self, data: LabelledImages) -> None:
        """Images streamed from disk are stored as their file list (the files are the data), not as pixels."""
        metadata = {"classes": json.dumps(data.classes)}
        if isinstance(data.images, ImageFiles):
            tensors, metadata["image_files"] = {}, json.dumps(data.images.to_dict())
        else:
            tensors = {"images": data.images.contiguous()}
        tensors.update({f"labels.{task}": labels.contiguous() for task, labels in data.labels.items()})
        self._write_atomically({"": safetensors.torch.save(tensors, metadata=metadata)})

    def preview(self, rows: int = 10) -> dict[str, Any]:
        """Kedro-Viz table preview: counts per class of the primary task."""
        data = self.load()
        counts = data.class_counts()
        return {
            "columns": ["class", "images"],
            "index": list(range(len(counts))),
            "data": [[c, n] for c, n in counts.items()],
        }
