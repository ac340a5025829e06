"""Layer sweep: accuracy against the number of blocks transferred, frozen, fine-tuned and a random control."""

from headstart.pipelines.layer_sweep.pipeline import create_pipeline

__all__ = ["create_pipeline"]
