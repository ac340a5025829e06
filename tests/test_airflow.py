"""The generated DAGs in a real Airflow 3, and a real `airflow dags test` of the retrain DAG on tiny data.

Airflow lives in an environment of its own (scripts/airflow_env.sh makes `.venv-airflow`; or point
HEADSTART_AIRFLOW_PYTHON at another interpreter); without one these tests skip.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, copy_project

pytestmark = pytest.mark.slow
AIRFLOW_PYTHON = Path(os.environ.get("HEADSTART_AIRFLOW_PYTHON", PROJECT_ROOT / ".venv-airflow" / "bin" / "python"))
if not AIRFLOW_PYTHON.exists():
    pytest.skip(f"no Airflow environment at {AIRFLOW_PYTHON}: run scripts/airflow_env.sh", allow_module_level=True)


def without_adaptation(parameters: Path) -> None:
    """The strategies with an `adaptation` left out: the DAGs test orchestration, and each strategy is
    an Airflow task with a Kedro start-up of its own (the strategies themselves are tested elsewhere)."""
    conf = yaml.safe_load(parameters.read_text())
    strategies = conf["transfer"]["strategies"]
    conf["transfer"]["strategies"] = {name: s for name, s in strategies.items() if "adaptation" not in s}
    parameters.write_text(yaml.safe_dump(conf, sort_keys=False))
    test_conf = parameters.parents[1] / "test" / "parameters_transfer.yml"
    conf = yaml.safe_load(test_conf.read_text())
    conf["transfer"]["strategies"] = {
        n: s for n, s in conf["transfer"]["strategies"].items() if n in strategies and "adaptation" not in strategies[n]
    }
    test_conf.write_text(yaml.safe_dump(conf, sort_keys=False))


@pytest.fixture(scope="module")
def airflow_project(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    without_adaptation(project / "conf/base/parameters_transfer.yml")
    shutil.copytree(PROJECT_ROOT / "airflow", project / "airflow", ignore=shutil.ignore_patterns("dags"))
    home = tmp_path_factory.mktemp("airflow_home")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW_"))}
    environment.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "airflow" / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "HEADSTART_PROJECT_PATH": str(project),
            "HEADSTART_KEDRO_ENV": "test",
        }
    )

    def run(*args):
        return subprocess.run(
            [str(AIRFLOW_PYTHON), *args], cwd=project, env=environment, capture_output=True, text=True, timeout=900
        )

    created = run(
        "-m",
        "kedro",
        "airflow",
        "create",
        "--all",
        "--group-by",
        "namespace",
        "-j",
        "airflow/dag_template.j2",
        "-t",
        "airflow/dags",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    assert run("-m", "airflow", "db", "migrate").returncode == 0
    return project, run


def test_every_generated_dag_imports_in_airflow_3_with_its_own_id(airflow_project):
    project, run = airflow_project
    listed = run(
        "-c",
        (
            "import json; from airflow.dag_processing.dagbag import DagBag; "
            f"b = DagBag({str(project / 'airflow' / 'dags')!r}); "
            "r = b.dags['headstart_retrain']; "
            "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, 'ids': sorted(b.dag_ids), "
            "'retrain_tasks': sorted(t.task_id for t in r.tasks), "
            "'schedule': str(r.schedule)}))"
        ),
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    pipelines = [p for p in (PROJECT_ROOT / "src/headstart/pipelines").iterdir() if (p / "pipeline.py").exists()]
    one_per_pipeline = len(pipelines) + 1  # and the default
    assert len(found["ids"]) == len(list((project / "airflow" / "dags").glob("*.py"))) == one_per_pipeline  # unique
    assert {"headstart_default", "headstart_retrain", "headstart_multitask", "headstart_predict"} <= set(found["ids"])
    assert {
        "ingest",
        "scratch",
        "finetune-full",
        "lp-ft",
        "choose-champion",
        "open_mlflow_run",
        "prune_versions",
    } <= set(found["retrain_tasks"])
    assert found["schedule"] == "@weekly"  # from conf/base/airflow.yml


def test_retrain_dag_runs_and_promotes_a_champion_under_one_mlflow_run(airflow_project):
    project, run = airflow_project
    tested = run("-m", "airflow", "dags", "test", "headstart_retrain")
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-3000:]
    assert "state=success" in tested.stdout + tested.stderr
    (report,) = (project / "data/08_reporting/promotion_report.json").glob("*/promotion_report.json")
    decision = json.loads(report.read_text())
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["headstart"], output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get("orchestrator") == "airflow"]
    assert parent.info.status == "FINISHED"
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {r.data.tags["kedro.namespaces"] for r in nested} >= {"ingest", "scratch", "lp_ft"}
    champion = mlflow.MlflowClient().get_model_version_by_alias("headstart-digits", "champion")
    assert champion.tags["strategy"] == decision["candidate_strategy"]
