"""Predict: classify a folder of new images with the champion or a catalogued strategy model."""

from headstart.pipelines.predict.pipeline import create_pipeline

__all__ = ["create_pipeline"]
