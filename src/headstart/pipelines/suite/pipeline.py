"""`kedro run --pipelines=suite` (the last step of `kedro suite`): each task's comparison and advice,
read from the task's own folder (the catalog's `suite.{task}.*` factories), into the suite report."""

from kedro.pipeline import Pipeline

from headstart import configured
from headstart.params import SuiteParams
from headstart.pipelines.shared import node_reading_strategies
from headstart.pipelines.suite.nodes import summarise_suite


def create_pipeline(**kwargs) -> Pipeline:
    raw = configured.parameters().get("suite")
    if not raw:
        return Pipeline([])
    tasks = SuiteParams(**raw).chosen()
    inputs = ["params:suite", *(f"suite.{t}.{name}" for t in tasks for name in ("transfer_comparison", "advice"))]
    outputs = ["suite_tasks", "suite_audit", "suite_metrics", "suite_report", "suite_audit_chart"]
    return Pipeline([node_reading_strategies(summarise_suite, inputs, outputs, "summarise_suite")])
