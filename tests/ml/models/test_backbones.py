import pytest
import safetensors.torch
import timm
import torch
import torchvision

from headstart.ml.models import block_count, build_model
from headstart.ml.models.loading import adapt_input_channels, to_our_names
from headstart.ml.transfer import TransferSpec, freeze, load_full_state, select_prefixes, train_mode, transfer_model

# One of each family torchvision and timm ship, small enough to build in a test.
FAMILIES = [
    {"name": "small_cnn"},
    {"name": "resnet18", "input_size": 32},
    {"name": "mobilenet_v3_small", "input_size": 32},
    {"name": "efficientnet_b0", "input_size": 32},
    {"name": "convnext_tiny", "input_size": 32},
    {"name": "squeezenet1_1", "input_size": 48},
    {"name": "swin_t", "input_size": 32},
    {"name": "vit_b_16", "input_size": 32},
    {"library": "timm", "name": "resnet18", "input_size": 32},
    {"name": "vit_tiny_patch16_224", "input_size": 32},
    {"name": "convnext_atto", "input_size": 32},
]


@pytest.mark.parametrize("settings", FAMILIES, ids=lambda s: f"{s.get('library', '')}{s['name']}")
def test_every_family_builds_offline_for_grey_digits_and_splits_its_whole_body_into_blocks(settings):
    model = build_model({**settings, "in_channels": 1, "num_classes": 7}).eval()
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        logits = model(images)
        features = model.forward_features(images)
        per_block = model.forward_block_features(images)
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.num_features)
    assert block_count(model) >= 3
    assert len(per_block) == block_count(model)
    assert all(vectors.shape[0] == 2 and vectors.dim() == 2 for vectors in per_block)
    blocks = [prefix for block in model.block_prefixes() for prefix in block]
    body = {n for n, _ in model.named_parameters() if not n.startswith("head.")}
    assert body == {n for n in body if n.startswith(tuple(blocks))}  # freeze_blocks: all covers the body
    model.reset_classifier(4, hidden=(16,))
    assert model(images).shape == (2, 4)


def test_torchvision_weights_load_by_their_own_names_and_compute_torchvisions_function():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    ours = build_model({"name": "resnet18", "in_channels": 3, "num_classes": 5}).eval()
    load_full_state(ours, to_our_names(ours, reference.state_dict()))
    images = torch.rand(2, 3, 240, 240)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(ours.preprocess(images)))


def test_the_models_own_preprocessing_crops_resizes_and_normalises_as_its_data_config_says():
    timm_vit = build_model({"name": "vit_tiny_patch16_224", "in_channels": 3, "num_classes": 2, "input_size": 32})
    expected = timm.data.resolve_data_config({}, model=timm_vit.net)
    assert timm_vit.data_config.mean == tuple(expected["mean"])
    assert (timm_vit.data_config.interpolation, timm_vit.data_config.crop_pct) == ("bicubic", expected["crop_pct"])
    transforms = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    resnet = build_model({"name": "resnet18", "in_channels": 3, "num_classes": 2})
    assert resnet.data_config.input_size == transforms.crop_size[0] == 224
    assert resnet.data_config.crop_pct == pytest.approx(224 / 256)
    flat = torch.full((1, 3, 256, 256), 0.5)
    flat[..., :16, :] = 0.0  # a border the centre crop removes
    prepared = resnet.preprocess(flat)
    assert prepared.shape == (1, 3, 224, 224)
    mean, std = torch.tensor(transforms.mean).view(1, 3, 1, 1), torch.tensor(transforms.std).view(1, 3, 1, 1)
    torch.testing.assert_close(prepared, ((torch.full_like(prepared, 0.5) - mean) / std))


def test_a_timm_vit_from_a_local_safetensors_file_computes_timms_function_and_pools_its_class_token(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3).eval()
    path = tmp_path / "vit.safetensors"
    safetensors.torch.save_file(reference.state_dict(), path)
    ours = build_model({"name": "vit_tiny_patch16_224", "in_channels": 3, "num_classes": 3, "input_size": 32}).eval()
    load_full_state(ours, to_our_names(ours, safetensors.torch.load_file(path)))
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), reference(ours.preprocess(images)))
        tokens = reference.forward_features(ours.preprocess(images))  # N × (1 + patches) × D, final norm applied
        torch.testing.assert_close(ours.forward_block_features(images)[-1], tokens[:, 0])


def test_a_vit_freezes_by_transformer_block_and_its_optimizer_sees_only_the_rest():
    source = build_model({"name": "vit_tiny_patch16_224", "in_channels": 3, "num_classes": 5, "input_size": 32})
    spec = TransferSpec(copy_blocks="all", freeze_blocks=4)
    model, report = transfer_model(
        {"name": "vit_tiny_patch16_224", "in_channels": 3, "input_size": 32}, source.state_dict(), 2, spec
    )
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"net.cls_token", "net.pos_embed", "net.patch_embed.proj.weight"} <= frozen
    assert all(n.startswith(("net.blocks.0.", "net.blocks.1.", "net.blocks.2.")) for n in frozen if "blocks." in n)
    assert not any(n.startswith("net.blocks.3.") for n in frozen) and "head.weight" not in frozen
    assert report.frozen_parameters == sum(p.numel() for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(ValueError, match="freeze_blocks: 99 is outside the model's 13 blocks"):
        select_prefixes(model, 99, (), "freeze")


def test_rgb_weights_fit_a_grey_input_by_timms_adapt_input_conv():
    rgb_state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    grey = build_model({"name": "mobilenet_v3_small", "in_channels": 1, "num_classes": 1000})
    adapted = adapt_input_channels(grey, to_our_names(grey, rgb_state))
    first = rgb_state["features.0.0.weight"]
    torch.testing.assert_close(adapted["net.features.0.0.weight"], first.sum(1, keepdim=True))
    load_full_state(grey, adapted)


def test_a_frozen_resnet_block_keeps_its_batch_norm_statistics():
    model = build_model({"name": "resnet18", "in_channels": 3, "num_classes": 2, "input_size": 32})
    freeze(model, select_prefixes(model, 2, (), "freeze"))
    train_mode(model)
    frozen_before = model.net.layer1[0].bn1.running_mean.clone()
    trained_before = model.net.layer2[0].bn1.running_mean.clone()
    model(torch.rand(4, 3, 32, 32))
    assert torch.equal(model.net.layer1[0].bn1.running_mean, frozen_before)
    assert not torch.equal(model.net.layer2[0].bn1.running_mean, trained_before)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "resnet_eighteen"}, "unknown timm model 'resnet_eighteen'"),
        ({"library": "torchvision", "name": "vit_tiny_patch16_224"}, "unknown torchvision classifier"),
    ],
)
def test_an_unknown_model_name_is_refused_by_its_library(settings, message):
    with pytest.raises(ValueError, match=message):
        build_model({**settings, "in_channels": 3, "num_classes": 2})
