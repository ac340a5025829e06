"""Advice audit: after the default run and the layer sweep, how the scores' rankings and the advised
strategy compare with the accuracy training measured."""

from headstart.pipelines.advice_audit.pipeline import create_pipeline

__all__ = ["create_pipeline"]
