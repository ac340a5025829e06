"""Retrain (scheduled in Airflow): ingest the newest data, pretrain or reuse, transfer, promote the champion."""

from headstart.pipelines.retrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
