import pytest
import torch
import torchvision

from headstart.ml.models import ARCHITECTURES, build_model
from headstart.ml.models.loading import adapt_input_channels, to_our_names
from headstart.ml.models.torchvision_backbones import IMAGENET_MEAN, IMAGENET_STD
from headstart.ml.transfer import load_full_state


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_builds_offline_for_grey_digits_and_splits_body_from_head(name):
    config = {"name": name, "in_channels": 1, "num_classes": 7}
    if name != "small_cnn":
        config["input_size"] = 32
    model = build_model(config).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 28, 28))
        features = model.forward_features(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.num_features)
    assert len(model.blocks) >= 3
    assert {n.split(".")[0] for n in model.state_dict()} - {"blocks", "head", "neck"} == set()
    model.reset_classifier(4, hidden=(16,))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 4)


def test_torchvision_weights_load_into_our_layout_and_compute_the_same_function():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    ours = build_model({"name": "resnet18", "in_channels": 3, "num_classes": 5}).eval()
    load_full_state(ours, to_our_names(ours, reference.state_dict()))
    images = torch.rand(2, 3, 64, 64)
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(normalised))


def test_rgb_weights_fit_a_grey_input_by_summing_the_first_convolution():
    rgb_state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    grey = build_model({"name": "mobilenet_v3_small", "in_channels": 1, "num_classes": 1000})
    adapted = adapt_input_channels(grey, to_our_names(grey, rgb_state))
    torch.testing.assert_close(adapted["blocks.0.0.weight"], rgb_state["features.0.0.weight"].sum(1, keepdim=True))
    load_full_state(grey, adapted)
