"""Promote: make the best new model the registry's champion only if it beats the current one."""

from headstart.pipelines.promote.pipeline import create_pipeline

__all__ = ["create_pipeline"]
