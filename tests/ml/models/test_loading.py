import io
import urllib.error

import pytest
import safetensors.torch
import torch
import torchvision

from headstart.ml.errors import InvalidDataError
from headstart.ml.models import build_model
from headstart.ml.models.loading import (
    WeightsUnavailableError,
    head_classes,
    load_torchvision_weights,
    read_state_file,
    to_our_names,
)
from headstart.ml.transfer import CheckpointMismatchError, load_full_state


def test_checkpoints_load_from_safetensors_and_from_state_dicts_with_weights_only(tmp_path):
    state = build_model({"name": "small_cnn", "num_classes": 4}).state_dict()
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "model.pt"
    )  # a DDP training dict
    for name in ("model.safetensors", "model.pt"):
        loaded = read_state_file(tmp_path / name)
        assert loaded.keys() == state.keys() and head_classes(loaded) == 4


class NotATensor:
    pass


def test_a_pickled_object_is_refused_without_running_its_code(tmp_path):
    buffer = io.BytesIO()
    torch.save({"weights": NotATensor()}, buffer)
    (tmp_path / "evil.pt").write_bytes(buffer.getvalue())
    with pytest.raises(InvalidDataError, match=r"evil.pt: not a plain state dict that loads with weights_only=True"):
        read_state_file(tmp_path / "evil.pt")
    with pytest.raises(InvalidDataError, match="missing.pt: checkpoint file not found"):
        read_state_file(tmp_path / "missing.pt")


def test_a_checkpoint_of_another_architecture_fails_with_names_and_shapes():
    state = build_model({"name": "small_cnn", "num_classes": 10, "widths": [16, 32]}).state_dict()
    model = build_model({"name": "small_cnn", "num_classes": 10, "widths": [16, 32, 64]})
    with pytest.raises(CheckpointMismatchError) as error:
        load_full_state(model, state)
    message = str(error.value)
    assert "blocks.2.0.weight: missing from the source" in message
    assert "head.weight: source (10, 32) vs model (10, 64)" in message


def test_torchvision_weights_offline_fail_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        load_torchvision_weights("ResNet18_Weights.IMAGENET1K_V1")
    message = str(error.value)
    assert "ResNet18_Weights.IMAGENET1K_V1 is not in the torch cache" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    with pytest.raises(InvalidDataError, match="unknown torchvision weights 'ResNet18_Weights.NOPE'"):
        load_torchvision_weights("ResNet18_Weights.NOPE")


def test_torchvision_weights_in_the_torch_cache_load_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    cached_state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(cached_state, cache / "resnet18-f37072fd.pth")  # what a download would have left there
    state, num_classes = load_torchvision_weights("ResNet18_Weights.IMAGENET1K_V1")
    assert num_classes == 1000
    model = build_model({"name": "resnet18", "in_channels": 3, "num_classes": 1000})
    load_full_state(model, to_our_names(model, state))
    assert torch.equal(model.net.conv1.weight, cached_state["conv1.weight"])
