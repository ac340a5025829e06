"""Transfer: every strategy a namespace of one template, then the comparison against the baseline."""

from headstart.pipelines.transfer.pipeline import create_pipeline

__all__ = ["create_pipeline"]
