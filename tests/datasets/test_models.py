import json

import torch
from kedro.io import Version

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
