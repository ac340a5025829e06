#!/usr/bin/env bash
# An environment of its own for Airflow 3 (kept apart from Kedro-Viz, whose fastapi Airflow does not
# accept), layered over the project's .venv: a .pth line puts .venv's packages (torch, kedro and headstart
# itself, installed once) after Airflow's own, so Airflow's pins win where they differ and nothing large is
# installed twice. Make .venv first (README command 2). tests/test_airflow.py uses it when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
project_packages=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .venv-airflow
python3.11 -m venv --without-pip .venv-airflow # no pip or setuptools of its own to shadow .venv's
own_packages=$(.venv-airflow/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import site; site.addsitedir('$project_packages')" >"$own_packages/headstart_project.pth"
pip=(.venv/bin/python -m pip --python .venv-airflow/bin/python)
"${pip[@]}" install --quiet "apache-airflow==3.3.2" "kedro-airflow==0.11.0"
"${pip[@]}" check
