"""Pretrain: train the source model on the source data, or load one (torchvision weights, a checkpoint)."""

from headstart.pipelines.pretrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
