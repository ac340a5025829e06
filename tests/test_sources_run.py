"""A strategy from another source: `kedro run` trains it from the advise candidate it names, and a name
that is no candidate stops the run before any target training, naming the strategy."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import copy_project, kedro_run

pytestmark = pytest.mark.slow
COMPARED = ["scratch", "pixels_logistic", "pixels_knn", "finetune_top", "finetune_top_font_family"]


def versions(project: Path, relative: str) -> list[Path]:
    return sorted((project / relative).glob("*/"))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("project"))
    defined = yaml.safe_load((project / "conf/base/parameters_transfer.yml").read_text())["transfer"]["strategies"]
    others = [name for name in defined if name not in COMPARED]  # every other strategy, however many there are
    with (project / "conf/test/parameters_transfer.yml").open("a") as conf:
        conf.write(f"  leave_out: [{', '.join(others)}]\n")
    result = kedro_run(project, "--pipelines=ingest,pretrain,advise,transfer")
    assert result.returncode == 0, result.stderr[-3000:]
    return project


def test_a_strategy_naming_a_source_trains_from_that_candidate(compared):
    project = compared
    table = pd.read_csv(versions(project, "data/08_reporting/transfer_comparison.csv")[-1] / "transfer_comparison.csv")
    assert sorted(table["strategy"]) == sorted(COMPARED)
    candidates = versions(project, "data/06_models/source_candidates")[-1] / "source_candidates"
    for strategy, source in (("finetune_top_font_family", "font_family"), ("finetune_top", "printed_digits")):
        stored = versions(project, f"data/06_models/{strategy}/target_models")[-1] / "target_models"
        info = json.loads((stored / "seed_0.json").read_text())["info"]
        assert info["strategy_params"]["source"] == (None if strategy == "finetune_top" else source)
        # finetune_top keeps its first blocks frozen: they are the weights of the source it started from
        target = load_file(stored / "seed_0.safetensors")["blocks.0.0.weight"]
        assert torch.equal(target, load_file(candidates / f"{source}.safetensors")["blocks.0.0.weight"])
    digits = load_file(candidates / "printed_digits.safetensors")["blocks.0.0.weight"]
    assert not torch.equal(digits, load_file(candidates / "font_family.safetensors")["blocks.0.0.weight"])


def test_a_source_that_is_no_candidate_stops_the_run_before_any_training(compared):
    project = compared
    before = versions(project, "data/06_models/scratch/target_models")
    wrong = "--params=transfer.strategies.finetune_top_font_family.source=no_such"
    result = kedro_run(project, "--pipelines=transfer", wrong)
    assert result.returncode != 0
    assert "transfer.strategies.finetune_top_font_family.source: no advise candidate 'no_such'" in result.stderr
    assert versions(project, "data/06_models/scratch/target_models") == before
