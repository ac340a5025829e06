"""Ingest: load source and target images, validate them, split, and summarise."""

from headstart.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
