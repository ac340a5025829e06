"""The champion model in the MLflow model registry, as a Kedro dataset (kedro-datasets has none).

Load: the model version behind `<registered_model>@<alias>` (weights + JSON config), or None when
there is no champion yet. Save: a promotion decision; when it says promote, the model is logged as
artifacts of the active MLflow run, registered as a new version and given the alias. The registry
versions the model, so this dataset is not Kedro-versioned.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import safetensors.torch
from kedro.io import AbstractDataset, DatasetError
from mlflow.exceptions import MlflowException

from headstart.ml.models.stored import StoredModel

ARTIFACT_PATH = "champion"


class ChampionModelDataset(AbstractDataset[dict, dict | None]):
    def __init__(self, registered_model: str, alias: str = "champion", metadata: dict[str, Any] | None = None) -> None:
        self._name, self._alias, self.metadata = registered_model, alias, metadata

    def load(self) -> dict | None:
        """{"model": StoredModel, "version": str, "tags": {...}} of the champion, or None."""
        client = mlflow.MlflowClient()
        try:
            version = client.get_model_version_by_alias(self._name, self._alias)
        except MlflowException:
            return None
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source))
        described = json.loads((folder / "model.json").read_text())
        state = safetensors.torch.load_file(folder / "model.safetensors")
        model = StoredModel(described["config"], state, described.get("info", {}))
        return {"model": model, "version": version.version, "tags": dict(version.tags)}

    def save(self, data: dict) -> None:
        """`data`: {"promote": bool, "model": StoredModel | None, "tags": {...}}; only a promotion writes."""
        if not data.get("promote"):
            return
        run = mlflow.active_run()
        if run is None:
            raise DatasetError("promoting a champion needs an active MLflow run (the project's MLflow hook starts one)")
        model: StoredModel = data["model"]
        with tempfile.TemporaryDirectory() as folder:
            safetensors.torch.save_file(
                model.state, Path(folder) / "model.safetensors", metadata={"config": json.dumps(model.config)}
            )
            (Path(folder) / "model.json").write_text(
                json.dumps({"config": model.config, "info": model.info}, default=str)
            )
            mlflow.log_artifacts(folder, ARTIFACT_PATH)
        # mlflow.register_model resolves a runs:/ URI only to an MLflow model (an MLmodel file);
        # ours is safetensors + JSON, so the client calls keep the version linked to its run.
        client = mlflow.MlflowClient()
        try:
            client.get_registered_model(self._name)
        except MlflowException:  # the first promotion
            client.create_registered_model(self._name)
        version = client.create_model_version(
            self._name,
            f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
            run_id=run.info.run_id,
            tags={k: str(v) for k, v in data.get("tags", {}).items()},
        )
        client.set_registered_model_alias(self._name, self._alias, version.version)

    def _describe(self) -> dict[str, Any]:
        return {"registered_model": self._name, "alias": self._alias}
