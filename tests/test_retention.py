"""`kedro prune`: the newest versions of each data set and every version a registered model's lineage
names survive; the rest is listed, and deleted only when asked."""

import mlflow
import pytest
from click.testing import CliRunner

from headstart.cli import prune
from tests.conftest import copy_project

VERSIONS = [f"2026-11-0{day}T10.00.00.000Z" for day in range(1, 6)]  # oldest first
STORED = {  # catalog name → (version folder, file in a version)
    "source_model": ("data/06_models/source_model", "source_model/source.safetensors"),
    "scratch.target_models": ("data/06_models/scratch/target_models", "target_models/seed_0.safetensors"),
    "finetune_full.target_models": ("data/06_models/finetune_full/target_models", "target_models/seed_0.safetensors"),
    "target_train": ("data/05_model_input/target_train.safetensors", "target_train.safetensors"),
    # a suite task's own folder (`kedro suite`): pruned alike, under its task's name
    "suite.digits_k1.transfer_comparison": (
        "data/suite/digits_k1/08_reporting/transfer_comparison.csv",
        "transfer_comparison.csv",
    ),
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    project = copy_project(tmp_path)
    for folder, file in STORED.values():
        for version in VERSIONS:
            (project / folder / version / file).parent.mkdir(parents=True, exist_ok=True)
            (project / folder / version / file).write_bytes(b"x" * 1000)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project)
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    (project / "mlruns").mkdir(exist_ok=True)
    client = mlflow.MlflowClient()
    client.create_registered_model("headstart-digits")
    lineage = {  # the champion was made from the oldest versions; an earlier registered version from the second
        "data.source_model": VERSIONS[0],
        "data.scratch.target_models": VERSIONS[0],
        "data.target_train": VERSIONS[1],
    }
    champion = client.create_model_version("headstart-digits", "file:///nowhere", tags=lineage)
    client.set_registered_model_alias("headstart-digits", "champion", champion.version)
    client.create_model_version("headstart-digits", "file:///nowhere", tags={"data.source_model": VERSIONS[1]})
    return project


def surviving(project, name):
    folder = project / STORED[name][0]
    return sorted(p.name for p in folder.iterdir())


def test_prune_lists_then_deletes_all_but_the_newest_and_every_registered_lineage_version(project):
    listed = CliRunner().invoke(prune, ["--keep-last", "2"])
    assert listed.exit_code == 0, listed.output
    assert all(surviving(project, name) == VERSIONS for name in STORED)  # a dry run deletes nothing
    expected = {
        ("source_model", VERSIONS[2]),
        ("scratch.target_models", VERSIONS[1]),
        ("scratch.target_models", VERSIONS[2]),
        ("finetune_full.target_models", VERSIONS[0]),
        ("finetune_full.target_models", VERSIONS[1]),
        ("finetune_full.target_models", VERSIONS[2]),
        ("target_train", VERSIONS[0]),
        ("target_train", VERSIONS[2]),
        *(("suite.digits_k1.transfer_comparison", version) for version in VERSIONS[:3]),
    }
    lines = [line.split() for line in listed.output.splitlines() if line.startswith("would delete  ")]
    assert {(words[2], words[3]) for words in lines} == expected
    assert "would delete 11 versions" in listed.output and "--delete" in listed.output

    deleted = CliRunner().invoke(prune, ["--keep-last", "2", "--delete"])
    assert deleted.exit_code == 0, deleted.output
    assert surviving(project, "source_model") == [VERSIONS[0], VERSIONS[1], *VERSIONS[3:]]
    assert surviving(project, "scratch.target_models") == [VERSIONS[0], *VERSIONS[3:]]  # the champion's lineage
    assert surviving(project, "finetune_full.target_models") == VERSIONS[3:]
    assert surviving(project, "target_train") == [VERSIONS[1], *VERSIONS[3:]]
    assert surviving(project, "suite.digits_k1.transfer_comparison") == VERSIONS[3:]
    assert CliRunner().invoke(prune, ["--keep-last", "2"]).output.startswith("would delete 0 versions")
