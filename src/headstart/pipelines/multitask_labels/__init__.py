"""Multi-task labels sweep: Δm against single-task networks by labels per task, tasks and trunk start."""

from headstart.pipelines.multitask_labels.pipeline import create_pipeline

__all__ = ["create_pipeline"]
