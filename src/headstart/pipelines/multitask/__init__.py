"""Multi-task learning: hard and soft sharing, loss weighting, missing labels, single-task baselines."""

from headstart.pipelines.multitask.pipeline import create_pipeline

__all__ = ["create_pipeline"]
