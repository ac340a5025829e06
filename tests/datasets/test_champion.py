"""Only a missing registered model or alias means "no champion yet"; any other registry error stops."""

import mlflow
import pytest
from kedro.io import DatasetError

from headstart.datasets.champion import ChampionModelDataset


@pytest.fixture
def registry(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(None)


def test_no_registered_model_or_no_alias_means_no_champion_yet(registry):
    dataset = ChampionModelDataset("digits")
    assert dataset.load() is None
    registry.create_registered_model("digits")
    assert dataset.load() is None


def test_an_unreachable_registry_stops_with_its_message_instead_of_promoting(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri("http://127.0.0.1:9")
    try:
        with pytest.raises(DatasetError, match="model registry at http://127.0.0.1:9 could not be read"):
            ChampionModelDataset("digits").load()
    finally:
        mlflow.set_tracking_uri(None)
