import errno
import json
import time

import pytest
import torch
from kedro.io import DatasetError, Version

from headstart.datasets.models import ModelDataset
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel


def test_models_round_trip_as_safetensors_with_a_json_config_and_missing_ok_gives_none(tmp_path):
    optional = ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None), missing_ok=True)
    assert optional.load() is None
    config = {"name": "small_cnn", "in_channels": 1, "num_classes": 4, "widths": [4, 8]}
    models = {f"seed_{s}": StoredModel.from_module(build_model(config), config, {"seed": s}) for s in (0, 1)}
    ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None)).save(models)
    loaded = optional.load()
    assert loaded.keys() == models.keys() and loaded["seed_1"].info == {"seed": 1}
    for name, tensor in models["seed_0"].state.items():
        assert torch.equal(loaded["seed_0"].state[name], tensor)
    (folder,) = (tmp_path / "models").glob("*/models")
    assert sorted(p.name for p in folder.iterdir()) == [
        "seed_0.json",
        "seed_0.safetensors",
        "seed_1.json",
        "seed_1.safetensors",
    ]
    assert json.loads((folder / "seed_0.json").read_text())["config"] == config
    loaded["seed_0"].build()


def saved_versions(tmp_path, count: int = 1) -> dict[str, StoredModel]:
    config = {"name": "small_cnn", "in_channels": 1, "num_classes": 4, "widths": [4, 8]}
    models = {f"seed_{s}": StoredModel.from_module(build_model(config), config, {"seed": s}) for s in (0, 1)}
    for _ in range(count):
        ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None)).save(models)
        time.sleep(0.01)  # versions are millisecond timestamps
    return models


def test_a_full_disk_while_saving_keeps_no_half_written_version(tmp_path, monkeypatch):
    saved_versions(tmp_path)
    dataset = ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None))
    real_open, written = dataset._fs.open, []

    def fills_up(path, mode="rb", **kwargs):
        if "w" in mode and written:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        written.append(path)
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(dataset._fs, "open", fills_up)
    with pytest.raises(DatasetError, match="could not be written .*No space left on device.*nothing of this version"):
        dataset.save(saved_versions(tmp_path / "other"))
    assert len(list((tmp_path / "models").iterdir())) == 1  # the earlier version only, no partial one
    assert ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None)).load().keys() == {
        "seed_0",
        "seed_1",
    }


def test_a_truncated_or_emptied_model_version_is_refused_naming_the_file(tmp_path):
    saved_versions(tmp_path, count=2)
    older, newer = sorted((tmp_path / "models").iterdir())
    weights = newer / "models" / "seed_1.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    latest = ModelDataset(filepath=str(tmp_path / "models"), version=Version(None, None))
    with pytest.raises(DatasetError, match=f"{weights} or .*seed_1.json: missing, truncated or corrupt"):
        latest.load()
    for path in (newer / "models").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match="no model files"):
        latest.load()
    earlier = ModelDataset(filepath=str(tmp_path / "models"), version=Version(older.name, None)).load()
    assert earlier["seed_1"].info == {"seed": 1}  # the earlier version is intact
