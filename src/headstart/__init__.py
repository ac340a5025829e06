"""headstart: measure whether a head start (transfer or multi-task learning) beats training from scratch."""

__version__ = "0.1.0"
