import pytest
import torch

from headstart.ml import feature_cache
from headstart.ml.feature_cache import CachedViews, cache_depth
from headstart.ml.strategies import StrategyConfig, TargetTask, train_strategy
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec, transfer_model
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import toy_data


def train(freeze, views, augment=0.0, seed=0):
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG, source_state(), 3, (images[:36], labels[:36]), (images[36:], labels[36:]))
    training = TrainConfig(
        epochs=3,
        batch_size=8,
        body_lr=3e-3,
        head_lr=1e-2,
        progress=False,
        device="cpu",
        seed=seed,
        frozen_feature_views=views,
        augment={"max_rotation_deg": augment, "max_shift": augment / 100},
    )
    return train_strategy(
        task, StrategyConfig(procedure="fit", spec=TransferSpec(freeze_blocks=freeze), training=training)
    )


@pytest.mark.parametrize("freeze", [1, "all"])
def test_without_augmentation_cached_and_uncached_training_give_the_same_model(freeze):
    cached, uncached = train(freeze, views=8), train(freeze, views=None)
    reference = uncached.model.state_dict()
    for name, tensor in cached.model.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], atol=1e-5, rtol=1e-4, msg=name)
    for ours, theirs in zip(cached.history, uncached.history):
        assert ours["validation_accuracy"] == theirs["validation_accuracy"]
        assert ours["validation_loss"] == pytest.approx(theirs["validation_loss"], abs=1e-5)


def test_the_views_are_computed_once_for_every_seed():
    feature_cache._cache.clear()
    before = dict(feature_cache.counted)
    train(1, views=4, augment=10.0, seed=0)
    computed = feature_cache.counted["computed"] - before["computed"]
    train(1, views=4, augment=10.0, seed=1)  # another seed: the same frozen weights, images and views
    assert computed == 4 + 1  # four training views, one validation view
    assert feature_cache.counted["computed"] - before["computed"] == computed
    assert feature_cache.counted["reused"] - before["reused"] >= 5


def test_views_differ_and_each_step_draws_one_per_image():
    views = torch.arange(12.0).view(3, 4, 1)  # 3 images × 4 views
    generator = torch.Generator().manual_seed(0)
    chosen = CachedViews(views).choose_views(views, generator)
    assert chosen.shape == (3, 1) and all(chosen[i, 0] in views[i] for i in range(3))
    assert torch.equal(CachedViews(views[:, :1]).choose_views(views[:, :1], generator), views[:, 0])


def test_nothing_is_cached_where_the_prefix_output_is_not_fixed():
    images, _ = toy_data()
    fresh, _ = transfer_model(SOURCE_CONFIG, source_state(), 3, TransferSpec(copy_blocks=0, freeze_blocks=1))
    assert cache_depth(fresh) is None  # random batch norms frozen: they still estimate their statistics
    copied, _ = transfer_model(SOURCE_CONFIG, source_state(), 3, TransferSpec(freeze_blocks=1))
    assert cache_depth(copied) == 1
    trained, _ = transfer_model(SOURCE_CONFIG, source_state(), 3, TransferSpec())
    assert cache_depth(trained) is None


@pytest.mark.parametrize(
    ("library", "name"),
    [("torchvision", "resnet18"), ("timm", "vit_tiny_patch16_224"), ("torchvision", "mobilenet_v3_small")],
)
def test_a_library_model_resumes_its_forward_after_the_cached_blocks(library, name):
    from headstart.ml.feature_cache import output_after, prefix_output
    from headstart.ml.models import build_model

    config = {"name": name, "library": library, "in_channels": 3, "num_classes": 4, "input_size": 32}
    torch.manual_seed(0)
    source = build_model(config)
    model, _ = transfer_model(config, source.state_dict(), 3, TransferSpec(freeze_blocks=-1))
    depth = cache_depth(model)
    assert depth == len(model.block_prefixes()) - 1  # all but the last block
    images = torch.rand(2, 3, 40, 40)
    model.eval()
    with torch.no_grad():
        replayed = output_after(model, prefix_output(model, images, depth), depth)
        torch.testing.assert_close(replayed, model(images), atol=1e-4, rtol=1e-3)
    assert all(p.grad is None for p in model.parameters())
