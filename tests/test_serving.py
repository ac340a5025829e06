"""The MLflow model we log: loaded by mlflow.pyfunc, it predicts what our own classifier predicts,
nothing in it is pickled, and its environment pins what pyproject.toml pins."""

import ast
import importlib.util
import io
import pickle
import pickletools
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions, requires
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np
import pytest
import safetensors.torch
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import ImageClassifier
from headstart.serving import image_frame, log_image_classifier, served_requirements
from tests.conftest import PROJECT_ROOT
from tests.ml.test_ood import calibrated_model
from tests.ml.test_prediction import stored_model


@pytest.fixture
def experiment(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving", (tmp_path / "artifacts").as_uri()))
    yield
    mlflow.set_tracking_uri(None)


def model_folder(logged) -> Path:
    """Where MLflow wrote the logged model's files (a LoggedModel's artifact location), not a copy."""
    return Path(url2pathname(urlparse(mlflow.get_logged_model(logged.model_id).artifact_location).path))


def is_pickle(data: bytes) -> bool:
    """A pickle of protocol 2 or later (what pickle, cloudpickle and torch.save write), read to its STOP."""
    if len(data) < 3 or data[0] != 0x80 or not 2 <= data[1] <= pickle.HIGHEST_PROTOCOL:  # PROTO n
        return False
    try:
        return [opcode.name for opcode, _, _ in pickletools.genops(data)][-1] == "STOP"
    except (ValueError, IndexError):
        return False


def pickled_files(folder: Path) -> list[str]:
    """Files under `folder` that are pickles: by name, by their opcodes, or a zip holding one (torch.save)."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        inside_zip = zipfile.is_zipfile(io.BytesIO(data)) and any(
            name.endswith((".pkl", ".pickle")) for name in zipfile.ZipFile(io.BytesIO(data)).namelist()
        )
        if path.suffix in (".pkl", ".pickle") or is_pickle(data) or inside_zip:
            found.append(str(path.relative_to(folder)))
    return found


def test_logged_model_loads_through_pyfunc_and_predicts_like_the_library(experiment):
    stored = calibrated_model()  # with its temperature and out-of-distribution thresholds
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (20, 30), dtype=np.uint8), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)]
    with mlflow.start_run():
        logged = log_image_classifier(stored, "model", images[0], registered_model_name="served")
    assert logged.signature.inputs.input_names() == ["image"]
    outputs = logged.signature.outputs.input_names()
    assert outputs[:4] == ["predicted_class", "probability", "ood_score", "out_of_distribution"]
    assert "probability_c" in outputs
    loaded = mlflow.pyfunc.load_model("models:/served/1")
    served = loaded.predict(image_frame(images))
    direct = ImageClassifier(stored).predict(images)
    assert list(served["predicted_class"]) == list(direct["predicted_class"])
    np.testing.assert_allclose(served["probability"], direct["probability"], rtol=1e-6)
    np.testing.assert_allclose(served["ood_score"], direct["ood_score"], rtol=1e-6)
    assert list(served["out_of_distribution"]) == list(direct["out_of_distribution"])
    assert stored.info["temperature"] != 1 and direct["ood_score"].notna().all()

    folder = model_folder(logged)
    assert (folder / "MLmodel").is_file() and (folder / "served_model.py").is_file()  # the folder it is served from
    weights = folder / "artifacts" / "model.safetensors"
    assert safetensors.torch.load_file(weights).keys() == stored.state.keys()
    assert pickled_files(folder) == []


def test_the_pickle_check_finds_pickles_by_name_by_opcodes_and_inside_torch_save(tmp_path):
    (tmp_path / "model.json").write_text('{"name": "small_cnn"}')
    safetensors.torch.save_file({"w": torch.arange(300, dtype=torch.float32)}, tmp_path / "model.safetensors")
    assert pickled_files(tmp_path) == []
    (tmp_path / "python_model.pkl").write_bytes(b"")
    (tmp_path / "python_model").write_bytes(pickle.dumps({"model": [1, 2]}))
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pth")
    assert pickled_files(tmp_path) == ["model.pth", "python_model", "python_model.pkl"]


def pyproject_pins() -> dict[str, str]:
    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {canonicalize_name(Requirement(line).name): str(Requirement(line)) for line in dependencies}


def test_the_logged_models_requirements_pin_timm_and_the_rest_as_pyproject_does(experiment):
    with mlflow.start_run():
        logged = log_image_classifier(stored_model(), "model", np.zeros((16, 16), dtype=np.uint8))
    logged_lines = (model_folder(logged) / "requirements.txt").read_text().split()
    pins = pyproject_pins()
    assert pins["timm"] in logged_lines and pins["timm"].startswith("timm==")
    served = [line for line in logged_lines if canonicalize_name(Requirement(line).name) in pins]
    assert served == served_requirements()
    assert all(pins[canonicalize_name(Requirement(line).name)] == line for line in served)


def imported_modules(module: str) -> set[str]:
    """Every module `module` imports, at its top or inside a function (timm is imported lazily)."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def modules_and_packages(name: str) -> list[str]:
    """The modules that importing `name` runs: its packages, and it unless it names a function or class."""
    parts, found = name.split("."), []
    for end in range(1, len(parts) + 1):
        try:
            found.append(importlib.util.find_spec(".".join(parts[:end])).name)
        except (ModuleNotFoundError, AttributeError):
            break
    return found


def test_every_distribution_the_served_code_imports_is_a_requirement_or_comes_with_one():
    """The served model's code closure (served_model.py through headstart.ml), read statically: a new
    import of a package the requirements do not bring fails here, not where the model is served."""
    seen, pending, third_party = set(), ["headstart.served_model"], set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in imported_modules(module):
            top = name.split(".")[0]
            if top == "headstart":
                pending += modules_and_packages(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    assert "headstart.ml.models.timm_backbones" in seen and "timm" in third_party
    of_package = packages_distributions()
    distributions = {canonicalize_name(d) for top in third_party for d in of_package[top]}
    installed = {canonicalize_name(Requirement(line).name) for line in served_requirements()}
    pending = list(installed)
    while pending:  # what pip installs with them: their dependencies here, and theirs (no extras)
        for line in requires(pending.pop()) or []:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name not in installed and (requirement.marker is None or requirement.marker.evaluate({"extra": ""})):
                installed.add(name)
                pending.append(name)
    assert {"timm", "torch", "safetensors", "mlflow"} <= distributions
    assert distributions - installed == set()


@pytest.mark.slow
def test_a_timm_champion_predicts_through_pyfunc(experiment):
    config = {"library": "timm", "name": "resnet18", "in_channels": 1, "num_classes": 3, "input_size": 32}
    torch.manual_seed(0)
    stored = StoredModel.from_module(build_model(config), config, {"classes": ["a", "b", "c"], "image_size": 32})
    images = [np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)]
    with mlflow.start_run():
        log_image_classifier(stored, "model", images[0], registered_model_name="timm_champion")
    served = mlflow.pyfunc.load_model("models:/timm_champion/1").predict(image_frame(images))
    direct = ImageClassifier(stored).predict(images)
    assert list(served["predicted_class"]) == list(direct["predicted_class"])
    np.testing.assert_allclose(served["probability"], direct["probability"], rtol=1e-5)
