"""Advise: before any training on the target, score candidate source models and the domain gap, order
the strategies by the size × similarity rule, and race them briefly on validation."""

from headstart.pipelines.advise.pipeline import create_pipeline

__all__ = ["create_pipeline"]
