"""Multi-task capacity sweep: Δm against single-task networks as the shared trunk grows."""

from headstart.pipelines.multitask_capacity.pipeline import create_pipeline

__all__ = ["create_pipeline"]
