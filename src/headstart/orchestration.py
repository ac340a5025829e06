"""The MLflow run of one Airflow DAG run: opened by its first task, closed by its last; every task's
`kedro run` becomes a child run of it (our hook reads `PARENT_RUN_VARIABLE`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from headstart.tracking import configure_mlflow

PARENT_RUN_VARIABLE = "HEADSTART_MLFLOW_PARENT_RUN_ID"  # set by an orchestrator (our Airflow DAGs)


def _project_mlflow_settings(project_path: Path, env: str) -> dict[str, Any]:
    from kedro.config import MissingConfigException, OmegaConfigLoader

    loader = OmegaConfigLoader(
        str(project_path / "conf"),
        env=env,
        base_env="base",
        default_run_env="local",
        config_patterns={"mlflow": ["mlflow*"]},
    )
    try:
        return dict(loader["mlflow"])
    except MissingConfigException:
        return {}


def open_parent_run(project_path: Path, env: str, run_name: str, orchestrator: str = "airflow") -> str:
    """An MLflow run that the `kedro run` of each Airflow task (or suite task) nests under (one per DAG run)."""
    experiment = configure_mlflow(_project_mlflow_settings(Path(project_path), env), Path(project_path))
    run = mlflow.MlflowClient().create_run(  # left RUNNING: close_parent_run ends it
        experiment.experiment_id, run_name=run_name, tags={"orchestrator": orchestrator, "kedro.env": env}
    )
    return run.info.run_id


def close_parent_run(project_path: Path, env: str, run_id: str) -> None:
    """FAILED when a child run failed or was killed, else FINISHED."""
    configure_mlflow(_project_mlflow_settings(Path(project_path), env), Path(project_path))
    client = mlflow.MlflowClient()
    experiment = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    failed = any(child.info.status in ("FAILED", "KILLED") for child in children)
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
