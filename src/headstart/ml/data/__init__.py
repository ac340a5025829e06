"""Data sources, conversions and splits."""

from headstart.ml.data.images import LabelledImages

__all__ = ["LabelledImages"]
