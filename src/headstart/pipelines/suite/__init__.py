"""Suite: each task's comparison and advice (run by `kedro suite`) into the suite report, and the
advice audited across tasks against the fixed policies a user might follow instead."""

from headstart.pipelines.suite.pipeline import create_pipeline

__all__ = ["create_pipeline"]
