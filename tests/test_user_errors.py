from typing import Literal

import pytest
from kedro.io import DatasetError
from pydantic import BaseModel, Field, ValidationError

from headstart.ml.errors import InvalidDataError
from headstart.params import RuntimeParams
from headstart.user_errors import field_lines, unknown_namespaces, unknown_pipelines, user_message


class Inner(BaseModel):
    epochs: int = Field(1, ge=1)


class Outer(BaseModel):
    training: Inner
    name: str
    labels: int | Literal["all"] = "all"


def test_each_invalid_field_is_one_line_naming_its_path_without_links():
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"training": {"epochs": 0}, "labels": "many"})
    lines = field_lines("pretrain", caught.value)
    assert lines == [
        "pretrain.training.epochs: Input should be greater than or equal to 1 (got 0)",
        "pretrain.name: Field required",
        "pretrain.labels: Input should be a valid integer, unable to parse string as an integer"
        " or Input should be 'all' (got 'many')",
    ]


def test_a_device_error_reads_as_our_message():
    with pytest.raises(ValidationError) as caught:
        RuntimeParams.model_validate({"device": "cuda:99"})
    (line,) = field_lines("runtime", caught.value)
    assert line.startswith("runtime.device: cuda:99 is not available on this machine; devices found: cpu")


@pytest.mark.parametrize("cluster", ["scheduler:8786", {"local": 0}, {"locale": 2}, 4])
def test_a_cluster_neither_an_address_nor_local_processes_reads_as_our_message(cluster):
    assert RuntimeParams(cluster="tcp://10.0.0.5:8786").cluster == "tcp://10.0.0.5:8786"
    assert RuntimeParams(cluster={"local": 2}).cluster.local == 2 and RuntimeParams().cluster is None
    with pytest.raises(ValidationError) as caught:
        RuntimeParams.model_validate({"cluster": cluster})
    (line,) = field_lines("runtime", caught.value)
    assert line.startswith("runtime.cluster: a scheduler's address such as tcp://host:8786, or {local: N} with N ≥ 1")


def test_a_user_error_is_found_through_its_chain_and_a_fault_of_ours_is_not():
    try:
        try:
            raise InvalidDataError("data/x.png: unreadable or corrupt image")
        except InvalidDataError as error:
            raise DatasetError("Failed while loading data from dataset images.") from error
    except DatasetError as wrapped:
        assert user_message(wrapped) == "Failed while loading data from dataset images."
    try:
        raise RuntimeError("an internal fault")
    except RuntimeError as fault:
        assert user_message(fault) is None


def _registry():
    from kedro.pipeline import Node, Pipeline

    def step(x):
        return x

    ingest = Pipeline([Node(step, "a", "b", name="load")], namespace="ingest", prefix_datasets_with_namespace=False)
    transfer = Pipeline(
        [Node(step, "b", f"c_{name}", name="fit", namespace=f"transfer.{name}") for name in ("scratch", "finetune_top")]
    )
    return {"__default__": ingest + transfer, "ingest": ingest, "transfer": transfer}


def test_an_unknown_pipeline_is_answered_with_the_pipelines_there_are():
    message = unknown_pipelines(_registry(), ["ingest", "trasnfer"])
    assert (
        message == "unknown pipeline 'trasnfer' (did you mean 'transfer'?); the pipelines there are: ingest, transfer"
    )
    assert unknown_pipelines(_registry(), ["__default__", "transfer"]) is None  # all there: the error is another


def test_an_unknown_namespace_is_answered_with_those_of_the_pipelines_run():
    registry = _registry()
    assert unknown_namespaces({"__default__": registry["__default__"]}, ["transfer.finetune_tpo"], default=True) == (
        "unknown namespace 'transfer.finetune_tpo' (did you mean 'transfer.finetune_top'?); the namespaces of the "
        "default run: ingest, transfer, transfer.finetune_top, transfer.scratch"
    )
    ingest_only = unknown_namespaces({"ingest": registry["ingest"]}, ["transfer", "ingst"], default=False)
    assert ingest_only.startswith("unknown namespaces 'transfer', 'ingst' (did you mean 'ingest'?)")
    assert ingest_only.endswith("of --pipelines=ingest: ingest")
    assert unknown_namespaces({"transfer": registry["transfer"]}, ["transfer", "transfer.scratch"], False) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--pipelines=ingest,transfer", "--namespaces=finetune_tpo"],
            "unknown namespace 'finetune_tpo' (did you mean 'finetune_top'?); the namespaces of --pipelines=",
        ),
        (["--pipelines=ingest,trasnfer"], "unknown pipeline 'trasnfer' (did you mean 'transfer'?); the pipelines"),
    ],
    ids=["namespace", "pipeline"],
)
def test_kedro_run_answers_an_unknown_name_in_one_line_with_the_names_there_are(tmp_path, options, expected):
    from tests.conftest import copy_project, kedro_run

    result = kedro_run(copy_project(tmp_path), *options)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert expected in line and "ingest" in line.split(":", 2)[-1]  # the names listed
    assert "scratch" in line or "pretrain" in line
    assert "Traceback" not in result.stdout + result.stderr
