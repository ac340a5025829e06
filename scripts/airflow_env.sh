#!/usr/bin/env bash
# An environment of its own for Airflow 3 with headstart installed beside it (kept apart from
# Kedro-Viz, whose fastapi Airflow does not accept). tests/test_airflow.py uses it when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv-airflow
.venv-airflow/bin/pip install "apache-airflow==3.3.2" "kedro-airflow==0.11.0" -e .
.venv-airflow/bin/pip check
