"""Advise: before any training on the target, score candidate source models and the domain gap, and
recommend a strategy and freeze depth by the size × similarity rule."""

from headstart.pipelines.advise.pipeline import create_pipeline

__all__ = ["create_pipeline"]
