"""Paths in conf are the project's, whatever the working directory (an Airflow worker's is not)."""

from pathlib import Path

import pytest

from headstart import configured
from headstart.params import ImageFolderParams, RuntimeParams


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(configured, "_project_path", tmp_path / "project")
    monkeypatch.chdir(tmp_path)  # elsewhere
    return tmp_path / "project"


def test_relative_paths_in_parameters_resolve_against_the_project_root(project):
    assert RuntimeParams().checkpoint_dir == str(project / "data/06_models/checkpoints")
    folder = ImageFolderParams(kind="image_folder", root="data/01_raw/mine", test_root="/mnt/shared/test")
    assert folder.root == str(project / "data/01_raw/mine") and folder.test_root == "/mnt/shared/test"


def test_the_project_root_is_the_one_the_run_was_given(tmp_path, monkeypatch):
    monkeypatch.setattr(configured, "_project_path", None)
    monkeypatch.setenv("HEADSTART_PROJECT_PATH", str(tmp_path))
    assert configured.project_root() == tmp_path
    configured.use(configured._loader, tmp_path / "elsewhere")
    assert configured.project_root() == Path(tmp_path / "elsewhere")


def test_a_backbone_named_alone_in_conf_local_validates_over_the_base_conf(tmp_path):
    """The base conf sets no small_cnn-only key, so `pretrain.architecture: {name: resnet18}` merges clean."""
    import shutil

    from headstart import settings
    from headstart.params import PretrainParams
    from tests.conftest import PROJECT_ROOT

    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "parameters_pretrain.yml").write_text("pretrain:\n  architecture: {name: resnet18}\n")
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), **settings.CONFIG_LOADER_ARGS)
    pretrain = PretrainParams.model_validate(loader["parameters"]["pretrain"])
    assert pretrain.architecture.name == "resnet18" and pretrain.architecture.widths is None
    assert pretrain.training.epochs == 6  # the base's other settings still apply


def test_parameters_are_read_once_per_loader_and_again_for_a_new_one(monkeypatch):
    """Building the transfer pipeline asks once per strategy; Kedro's loader re-merges every file each time."""

    class CountingLoader:
        def __init__(self, parameters):
            self.parameters, self.reads = parameters, 0

        def __getitem__(self, key):
            self.reads += 1
            return self.parameters

    monkeypatch.setattr(configured, "_loader", None)
    monkeypatch.setattr(configured, "_loaded", None)
    first = CountingLoader({"transfer": {"strategies": {"scratch": {}}}})
    configured.use(first)
    assert [configured.names("transfer", "strategies") for _ in range(3)] == [["scratch"]] * 3
    assert first.reads == 1
    second = CountingLoader({"transfer": {"strategies": {"lp_ft": {}}}})
    configured.use(second)
    assert configured.names("transfer", "strategies") == ["lp_ft"] and second.reads == 1
