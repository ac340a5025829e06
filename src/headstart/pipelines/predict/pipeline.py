"""Predictions for a folder of new images (`images_to_predict` in the catalog) by the model that
`predict.model` names: the registry's champion, or a strategy's catalogued models."""

from kedro.pipeline import Pipeline

from headstart import configured
from headstart.pipelines.predict.nodes import predict_images
from headstart.pipelines.shared import node_reading_strategies


def model_dataset() -> str:
    chosen = configured.parameters().get("predict", {}).get("model", "champion")
    return "current_champion" if chosen == "champion" else f"{chosen}.target_models"


def create_pipeline(**kwargs) -> Pipeline:
    model = model_dataset()
    return Pipeline(
        [
            node_reading_strategies(
                predict_images,
                ["images_to_predict", model, "params:predict", "params:ingest"],
                "predictions",
                name="predict_images",
            )
        ]
    )
