"""Kedro dataset for named models: per model, `<name>.safetensors` (weights, loadable by anyone)
beside `<name>.json` (architecture config and how the model was made). One version is a folder,
so the models of all seeds of a strategy are saved, and versioned, together."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro.io.core import DatasetError
from safetensors import SafetensorError

from headstart.datasets.versioned_files import VersionedFileDataset
from headstart.ml.models.stored import StoredModel

NO_MODELS = "no_models.json"  # the one file of a version saved empty, so it loads as {} (not as deleted)


class ModelDataset(VersionedFileDataset):
    """Loads and saves `dict[name, StoredModel]`. With `missing_ok`, loading before any version
    exists gives None, so a node can reuse a model the catalog already holds."""

    def __init__(self, *args: Any, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._missing_ok = missing_ok

    def load(self) -> dict[str, StoredModel] | None:
        if self._missing_ok and not self._exists():
            return None
        folder = self._load_path()
        weights = sorted(self._fs.glob(f"{folder}/*.safetensors"))
        if not weights and self._fs.exists(f"{folder}/{NO_MODELS}"):  # saved empty: none was made
            return {}
        if not weights:
            raise DatasetError(f"{folder}: no model files (*.safetensors) in this version; it was deleted or emptied")
        models = {}
        for weights_path in weights:
            name = PurePosixPath(weights_path).stem
            described_path = f"{folder}/{name}.json"
            try:
                with self._fs.open(weights_path, "rb") as weights, self._fs.open(described_path, "rb") as described:
                    models[name] = StoredModel.decode(weights.read(), described.read())
            except (OSError, ValueError, SafetensorError) as error:  # missing, truncated or corrupt
                raise DatasetError(
                    f"{weights_path} or {described_path}: missing, truncated or corrupt ({error}); make the model "
                    "again, or load an earlier version with --load-versions"
                ) from error
        return models

    def save(self, data: dict[str, StoredModel]) -> None:
        files = {}
        for name, model in data.items():
            files[f"{name}.safetensors"], files[f"{name}.json"] = model.encode()
        self._write_atomically(files or {NO_MODELS: b"{}"})  # e.g. a strategy not applicable to the task

    def preview(self) -> dict[str, Any]:
        """Kedro-Viz: each model's architecture config and parameter count."""
        return {
            name: {**model.config, "parameters": sum(t.numel() for t in model.state.values() if t.is_floating_point())}
            for name, model in (self.load() or {}).items()
        }
