import pytest
import torch
from torch import nn

from headstart.ml.models import SmallCNN
from headstart.ml.training import TrainConfig, fit
from headstart.ml.transfer import (
    CheckpointMismatchError,
    TransferSpec,
    copy_weights,
    count_parameters,
    first_block_prefixes,
    freeze,
    parameter_groups,
    select_prefixes,
    transfer_model,
)


def tiny(num_classes: int = 3, widths=(4, 8)) -> SmallCNN:
    return SmallCNN(in_channels=1, num_classes=num_classes, widths=widths)


def toy_data(n: int = 48, classes: int = 3):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    images = torch.randint(0, 60, (n, 1, 8, 8), dtype=torch.uint8, generator=generator)
    images[torch.arange(n), 0, labels * 2, :] = 250  # a bright row per class: learnable
    return images, labels


def test_copied_tensors_equal_the_source_and_report_lists_each_tensor():
    torch.manual_seed(0)
    source, model = tiny(num_classes=10), tiny(num_classes=3)
    report = copy_weights(model, source.state_dict(), first_block_prefixes(model, 1))
    assert torch.equal(model.blocks[0][0].weight, source.blocks[0][0].weight)
    assert torch.equal(model.blocks[0][1].running_var, source.blocks[0][1].running_var)
    assert not torch.equal(model.blocks[1][0].weight, source.blocks[1][0].weight)
    assert report.copied == [n for n in source.state_dict() if n.startswith("blocks.0.")]
    assert "head.weight" in report.reinitialised and "blocks.1.0.weight" in report.reinitialised
    assert report.skipped["head.weight"] == "not selected for transfer"
    freeze(model, first_block_prefixes(model, 1))
    count_parameters(model, report)
    frozen = sum(p.numel() for p in model.blocks[0].parameters())
    assert report.frozen_parameters == frozen
    assert report.trainable_parameters == sum(p.numel() for p in model.parameters()) - frozen


def test_checkpoint_that_does_not_fit_names_every_mismatch():
    source_state = tiny(widths=(4, 16)).state_dict()
    del source_state["blocks.0.1.running_mean"]
    with pytest.raises(CheckpointMismatchError) as error:
        model = tiny(widths=(4, 8))
        copy_weights(model, source_state, first_block_prefixes(model, 2))
    message = str(error.value)
    assert "blocks.0.1.running_mean: missing from the source" in message
    assert "blocks.1.0.weight: source (16, 4, 3, 3) vs model (8, 4, 3, 3)" in message


def test_frozen_block_weights_and_batch_norm_statistics_do_not_move_in_training():
    torch.manual_seed(0)
    model = tiny()
    freeze(model, first_block_prefixes(model, 1))
    frozen_before = {k: v.clone() for k, v in model.blocks[0].state_dict().items()}
    trained_before = model.blocks[1][0].weight.clone()
    images, labels = toy_data()
    fit(model, (images, labels), (images, labels), TrainConfig(epochs=2, batch_size=16, progress=False))
    for name, tensor in model.blocks[0].state_dict().items():
        assert torch.equal(tensor, frozen_before[name]), name
    assert not torch.equal(model.blocks[1][0].weight, trained_before)
    assert all(p.grad is None for p in model.blocks[0].parameters())


def test_optimizer_holds_only_trainable_parameters_at_body_and_head_rates():
    model = tiny()
    freeze(model, first_block_prefixes(model, 1))
    groups = parameter_groups(model, body_lr=1e-5, head_lr=1e-3)
    held = {id(p) for group in groups for p in group["params"]}
    assert held == {id(p) for p in model.parameters() if p.requires_grad}
    head = {id(p) for p in model.head.parameters()}
    assert {g["lr"] for g in groups if {id(p) for p in g["params"]} <= head} == {1e-3}
    assert {g["lr"] for g in groups if not {id(p) for p in g["params"]} & head} == {1e-5}


def test_weight_decay_spares_biases_and_normalisation_scales():
    model = tiny()
    groups = parameter_groups(model, body_lr=1e-4, head_lr=1e-3, weight_decay=0.05)
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, parameter in model.named_parameters():
        spared = name.endswith("bias") or isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d)
        assert decay[id(parameter)] == (0.0 if spared else 0.05), name


def test_transfer_spec_copies_and_freezes_by_block_count_and_module_name():
    torch.manual_seed(0)
    source = SmallCNN(num_classes=10, widths=(4, 8, 8))
    spec = TransferSpec(copy_blocks="all", freeze_blocks=-1, head_hidden=(6,))
    model, report = transfer_model({"name": "small_cnn", "widths": [4, 8, 8]}, source.state_dict(), 3, spec)
    assert report.copied == [n for n in source.state_dict() if n.startswith("blocks.")]
    assert report.reinitialised == ["head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"]  # torchvision MLP
    assert [p.requires_grad for p in model.blocks[1].parameters()] == [False] * 3
    assert all(p.requires_grad for p in model.blocks[2].parameters())
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 3)
    scratch, report = transfer_model(
        {"name": "small_cnn", "widths": [4, 8, 8]}, source.state_dict(), 3, TransferSpec(copy_blocks=0)
    )
    assert report.copied == [] and report.frozen_parameters == 0
    assert select_prefixes(scratch, 1, ["pool"], "copy") == ["blocks.0.", "pool."]
    with pytest.raises(ValueError, match="copy_modules: no module 'stem' in the model"):
        select_prefixes(scratch, 0, ["stem"], "copy")
    with pytest.raises(ValueError, match="freeze_blocks: 5 is outside the model's 3 blocks"):
        select_prefixes(scratch, 5, [], "freeze")


def test_random_frozen_batch_norms_estimate_statistics_while_copied_frozen_ones_keep_the_sources():
    """Frozen copied layers keep the source's statistics; frozen random layers never learned any, so
    theirs are estimated on the target (frozen 0/1 statistics of random layers broke the sweep's control)."""
    torch.manual_seed(0)
    source = tiny(num_classes=10)
    source.blocks[0][1].running_mean.fill_(0.25)
    images, labels = toy_data()
    config = TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    copied, _ = transfer_model(
        {"name": "small_cnn", "widths": [4, 8]}, source.state_dict(), 3, TransferSpec(freeze_blocks=1)
    )
    fit(copied, (images, labels), (images, labels), config)
    assert torch.all(copied.blocks[0][1].running_mean == 0.25)
    random, _ = transfer_model(
        {"name": "small_cnn", "widths": [4, 8]}, source.state_dict(), 3, TransferSpec(copy_blocks=0, freeze_blocks=1)
    )
    weight = random.blocks[0][0].weight.clone()
    fit(random, (images, labels), (images, labels), config)
    assert torch.equal(random.blocks[0][0].weight, weight)  # still frozen
    assert not torch.all(random.blocks[0][1].running_mean == 0)  # statistics estimated on the target


def test_layer_wise_decay_trains_each_earlier_block_at_a_further_decayed_rate():
    model = tiny(widths=(4, 8, 8))
    groups = parameter_groups(model, body_lr=1.0, head_lr=0.5, layer_decay=0.5)
    rate_of = {id(p): group["lr"] for group in groups for p in group["params"]}
    assert {rate_of[id(p)] for p in model.blocks[0].parameters()} == {0.5**3}
    assert {rate_of[id(p)] for p in model.blocks[2].parameters()} == {0.5}
    assert {rate_of[id(p)] for p in model.head.parameters()} == {0.5}
    assert len(rate_of) == sum(1 for _ in model.parameters())
    without = parameter_groups(model, body_lr=1.0, head_lr=0.5)
    assert {g["lr"] for g in without} == {1.0, 0.5}
