"""What an orchestrator runs as separate processes hands over through stored data, never memory.

The Airflow DAGs (airflow/dag_template.j2, `kedro airflow create --group-by namespace`) run each node
group (a strategy's namespace, or a node alone) as a `kedro run` of its own: a dataset one group writes
and another reads must be stored, or it is gone when the reader starts. The Airflow test itself needs
an Airflow environment and minutes; this holds the same rule for every registered pipeline in seconds.
"""

from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import MemoryDataset

from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def registry_and_catalog():
    bootstrap_project(Path(PROJECT_ROOT))
    from kedro.framework.project import pipelines

    with KedroSession.create(project_path=PROJECT_ROOT, env="test") as session:
        context = session.load_context()
        yield dict(pipelines), context.catalog


def handed_over_in_memory(pipeline, catalog) -> list[str]:
    groups = pipeline.group_nodes_by("namespace")
    group_of = {node: group.name for group in groups for node in group.nodes}
    written_by = {output: group_of[node.name] for node in pipeline.nodes for output in node.outputs}
    lost = set()
    for node in pipeline.nodes:
        for name in node.inputs:
            if name in written_by and written_by[name] != group_of[node.name]:
                dataset = catalog.get(name) if name in catalog else None
                if dataset is None or (isinstance(dataset, MemoryDataset) and dataset._data is None):
                    lost.add(f"{name} ({written_by[name]} → {group_of[node.name]})")
    return sorted(lost)


def test_no_node_group_reads_what_another_group_left_only_in_memory(registry_and_catalog):
    registry, catalog = registry_and_catalog
    lost = {name: found for name, pipeline in registry.items() if (found := handed_over_in_memory(pipeline, catalog))}
    assert lost == {}


def test_the_check_finds_a_hand_over_in_memory(registry_and_catalog):
    from kedro.pipeline import Node, Pipeline

    catalog = registry_and_catalog[1]
    pipeline = Pipeline([Node(lambda: 1, None, "handed", name="a"), Node(lambda x: x, "handed", "out", name="b")])
    assert handed_over_in_memory(pipeline, catalog) == ["handed (a → b)"]
