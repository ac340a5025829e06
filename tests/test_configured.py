"""Paths in conf are the project's, whatever the working directory (an Airflow worker's is not)."""

from pathlib import Path

import pytest
import yaml

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


def test_a_data_source_of_another_kind_replaces_the_base_entry_and_one_of_the_same_kind_merges():
    from headstart.settings import replacing_other_kinds

    base = {"source": {"kind": "printed_digits", "count": 4000, "seed": 0}, "split": {"seed": 0}}
    folder = {"kind": "image_folder", "root": "data/01_raw/mine"}
    assert replacing_other_kinds(base, {"source": folder}) == {**base, "source": folder}
    assert replacing_other_kinds(base, {"source": {"kind": "printed_digits", "count": 400}}) == base  # merged after
    nested = {"a": {"adaptation": {"kind": "l2_sp", "weight": [0.1]}}}
    swapped = {"a": {"adaptation": {"kind": "coral"}}}
    assert replacing_other_kinds(nested, swapped) == swapped


def test_an_image_folder_in_conf_local_or_in_params_replaces_the_base_source(tmp_path):
    """The base's printed-digit keys (count, uci_preprocess, ...) are not merged into the user's folder."""
    import shutil

    from headstart import settings
    from headstart.params import IngestParams
    from tests.conftest import PROJECT_ROOT

    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    base = yaml.safe_load((conf / "base" / "parameters_ingest.yml").read_text())["ingest"]
    folder = {"kind": "image_folder", "root": "data/01_raw/my_images"}
    from_params = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf), runtime_params={"ingest": {"source": folder}}, **settings.CONFIG_LOADER_ARGS
    )
    (conf / "local" / "parameters.yml").write_text(f"ingest:\n  source: {folder}\n".replace("'", ""))
    from_local = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), **settings.CONFIG_LOADER_ARGS)
    for loader in (from_local, from_params):
        ingest = loader["parameters"]["ingest"]
        assert ingest["source"] == folder and ingest["split"] == base["split"]  # siblings kept
        assert IngestParams.model_validate(ingest).source.kind == "image_folder"
    domain_gap = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), env="domain_gap", **settings.CONFIG_LOADER_ARGS)
    source = domain_gap["parameters"]["ingest"]["source"]  # a key of the same source, merged as before
    assert source == {**base["source"], "uci_preprocess": False}


def write_images(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 12) -> None:
    """Grey 16-px images whose class is their brightness."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = generator.uniform(0, 80, (16, 16)) + 150 * label
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / name / f"{index}.png")


def test_an_image_folder_written_in_conf_local_ingests(tmp_path):  # a kedro run of ingest alone: in CI's tier
    """A user's own folder in conf/local, as source and target: the base's printed-digit keys are not
    merged into it (they were refused as extra inputs)."""
    import subprocess
    import sys

    from tests.conftest import copy_project, kedro_environment

    project = copy_project(tmp_path)
    write_images(project / "data/01_raw/my_images")
    folder = "{kind: image_folder, root: data/01_raw/my_images}"
    (project / "conf/local/parameters.yml").write_text(
        f"ingest:\n  source: {folder}\n  target: {folder}\n  split: {{labels_per_class: 2}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipelines=ingest"],
        cwd=project,
        env=kedro_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    statistics = sorted(project.glob("data/08_reporting/ingest_statistics.json/*/*.json"))
    assert statistics, sorted(str(p.relative_to(project)) for p in project.glob("data/**/*"))[:30]
