from typing import Literal

import pytest
from kedro.io import DatasetError
from pydantic import BaseModel, Field, ValidationError

from headstart.ml.errors import InvalidDataError
from headstart.params import RuntimeParams
from headstart.user_errors import field_lines, user_message


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
