"""Kedro dataset for `LabelledImages`: one safetensors file, class names in its metadata.

kedro-datasets' SafetensorsDataset stores bare tensors; an image set also needs its task order and
class names, which safetensors keeps in the header's `__metadata__`. No pickle anywhere.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import safetensors.torch
from kedro.io.core import AbstractVersionedDataset, Version, get_filepath_str, get_protocol_and_path

from headstart.ml.data.images import LabelledImages


def safetensors_metadata(raw: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's JSON header (8-byte little-endian length first)."""
    header_length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + header_length]).get("__metadata__", {})


class LabelledImagesDataset(AbstractVersionedDataset[LabelledImages, LabelledImages]):
    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists, glob_function=self._fs.glob
        )

    def load(self) -> LabelledImages:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, "rb") as file:
            raw = file.read()
        tensors = safetensors.torch.load(raw)
        metadata = safetensors_metadata(raw)
        classes = json.loads(metadata["classes"])
        return LabelledImages(
            images=tensors["images"],
            labels={task: tensors[f"labels.{task}"] for task in classes},
            classes=classes,
        )

    def save(self, data: LabelledImages) -> None:
        tensors = {"images": data.images.contiguous()}
        tensors.update({f"labels.{task}": labels.contiguous() for task, labels in data.labels.items()})
        raw = safetensors.torch.save(tensors, metadata={"classes": json.dumps(data.classes)})
        path = get_filepath_str(self._get_save_path(), self._protocol)
        with self._fs.open(path, "wb") as file:
            file.write(raw)

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except Exception:  # noqa: BLE001 - no version saved yet
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def preview(self, rows: int = 10) -> dict[str, Any]:
        """Kedro-Viz table preview: counts per class of the primary task."""
        data = self.load()
        counts = data.class_counts()
        return {"columns": ["class", "images"], "index": list(range(len(counts))), "data": [[c, n] for c, n in counts.items()]}
