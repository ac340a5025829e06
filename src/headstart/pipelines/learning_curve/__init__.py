"""Learning curve: test accuracy against the target label budget, transfer strategies vs the baseline."""

from headstart.pipelines.learning_curve.pipeline import create_pipeline

__all__ = ["create_pipeline"]
