"""The champion model in the MLflow model registry, as a Kedro dataset (kedro-datasets has none).

Load: the model version behind `<registered_model>@<alias>` (weights + JSON config), or None when
there is no champion yet. Save: a promotion decision; when it says promote, the model is logged as
an MLflow model of the active run (a pyfunc that `mlflow models serve` serves, see
headstart.serving), registered as a new version with its lineage as tags, and given the alias.
The registry versions the model, so this dataset is not Kedro-versioned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from kedro.io import AbstractDataset, DatasetError
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from headstart.ml.models.stored import StoredModel
from headstart.serving import load_logged_model, log_image_classifier

ARTIFACT_PATH = "champion"
LINEAGE_DATASETS = ("source_model", "target_train", "target_validation", "target_test")


def lineage(client: mlflow.MlflowClient, run, strategy: str) -> dict[str, str]:
    """Where a model came from, read off MLflow: this `kedro run`'s id and commit, and the catalog
    versions of its data; when the models were trained by an earlier run, that run's data versions."""
    models = f"{strategy}.target_models"
    run_tags = run.data.tags
    sources = [run_tags]
    tags = {"kedro.run_id": run_tags.get("kedro.run_id", ""), "git.commit": run_tags.get("git.commit", "")}
    trained = run_tags.get(f"kedro.loaded.{models}")
    if trained:
        found = client.search_runs(
            [run.info.experiment_id], f"tags.`kedro.saved.{models}` = '{trained}'", max_results=1
        )
        if found:
            sources.append(found[0].data.tags)
            tags["trained_in_run"] = found[0].info.run_id
    for name in (*LINEAGE_DATASETS, models):
        for source in sources:
            version = source.get(f"kedro.saved.{name}") or source.get(f"kedro.loaded.{name}")
            if version:
                tags[f"data.{name}"] = version
                break
    return tags


def describe(model: StoredModel) -> str:
    info, config = model.info, model.config
    channels = "grey" if model.in_channels == 1 else "RGB"
    return (
        f"Classifies {info.get('image_size', '?')}-pixel {channels} images into {len(info['classes'])} classes "
        f"({', '.join(map(str, info['classes']))}). Made by headstart's '{info.get('strategy')}' strategy from "
        f"the source model '{config.get('name')}' (catalog version in the data.source_model tag)."
    )


class ChampionModelDataset(AbstractDataset[dict, dict | None]):
    def __init__(self, registered_model: str, alias: str = "champion", metadata: dict[str, Any] | None = None) -> None:
        self._name, self._alias, self.metadata = registered_model, alias, metadata

    def load(self) -> dict | None:
        """{"model": StoredModel, "version": str, "tags": {...}} of the champion, or None."""
        client = mlflow.MlflowClient()
        try:
            registered = client.get_registered_model(self._name)
            if self._alias not in registered.aliases:
                return None  # registered, never promoted
            version = client.get_model_version(self._name, registered.aliases[self._alias])
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return None  # the first promotion
            raise DatasetError(
                f"the model registry at {mlflow.get_tracking_uri()} could not be read, so no champion can be "
                f"judged or replaced: {error.message}"
            ) from error
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source))
        return {"model": load_logged_model(folder), "version": version.version, "tags": dict(version.tags)}

    def save(self, data: dict) -> None:
        """`data`: {"promote": bool, "model": StoredModel | None, "example": image, "tags": {...}};
        only a promotion writes."""
        if not data.get("promote"):
            return
        run = mlflow.active_run()
        if run is None:
            raise DatasetError("promoting a champion needs an active MLflow run (the project's MLflow hook starts one)")
        model: StoredModel = data["model"]
        logged = log_image_classifier(model, ARTIFACT_PATH, data["example"], registered_model_name=self._name)
        client = mlflow.MlflowClient()
        version = str(logged.registered_model_version)
        lineage_tags = lineage(client, client.get_run(run.info.run_id), str(model.info.get("strategy")))
        tags = {**lineage_tags, **data.get("tags", {})}
        for key, value in tags.items():
            client.set_model_version_tag(self._name, version, key, str(value))
        client.update_registered_model(self._name, description=describe(model))
        client.set_registered_model_alias(self._name, self._alias, version)

    def _describe(self) -> dict[str, Any]:
        return {"registered_model": self._name, "alias": self._alias}


class RunModelDataset(AbstractDataset[dict, None]):
    """Save-only: a model logged as an MLflow model of the active run (not registered), so every run's
    best model can be loaded with `mlflow.pyfunc.load_model("runs:/<run id>/<name>")`. It refers to the
    catalog's file of the weights (`weights_file`, which the MLflow hook fills in from the catalog
    entry the model was loaded from), so the weights are stored once."""

    def __init__(self, name: str = "best_model", metadata: dict[str, Any] | None = None) -> None:
        self._name, self.metadata = name, metadata

    def load(self) -> None:
        raise DatasetError(f"{self._name} is logged to MLflow only; load it with mlflow.pyfunc.load_model")

    def save(self, data: dict) -> None:
        if mlflow.active_run() is None:
            raise DatasetError(
                f"logging {self._name} needs an active MLflow run (the project's MLflow hook starts one)"
            )
        log_image_classifier(data["model"], self._name, data["example"], weights_file=data.get("weights_file"))

    def _describe(self) -> dict[str, Any]:
        return {"name": self._name}
