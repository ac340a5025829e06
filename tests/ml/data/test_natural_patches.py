"""The far-domain targets: patches of the photographs scikit-learn and matplotlib install, offline."""

import pytest
import torch
from pydantic import ValidationError

from headstart.ml.data.natural_patches import (
    BLUR_SIGMAS,
    CHANNEL_ORDERS,
    PATCH_TASKS,
    NaturalPatchesConfig,
    label_patches,
    load_photograph,
    make_natural_patches,
)
from headstart.params import IngestParams


def config(**overrides) -> NaturalPatchesConfig:
    return NaturalPatchesConfig(**{"count": 60, "seed": 3, "image_size": 32, "channels": 3, **overrides})


@pytest.mark.parametrize("task", PATCH_TASKS)
def test_the_same_seed_cuts_the_same_patches_and_another_seed_others(task):
    first, second = make_natural_patches(config(task=task)), make_natural_patches(config(task=task))
    assert torch.equal(first.images, second.images)
    assert all(torch.equal(first.labels[name], second.labels[name]) for name in first.labels)
    assert not torch.equal(first.images, make_natural_patches(config(task=task, seed=4)).images)


@pytest.mark.parametrize(
    ("task", "classes"),
    [
        ("photograph", ["china", "flower", "grace_hopper"]),
        ("rotation", ["0°", "90°", "180°", "270°"]),
        ("channel_order", list(CHANNEL_ORDERS)),
        ("blur", [f"σ {sigma:g}" for sigma in BLUR_SIGMAS]),
    ],
)
def test_every_class_is_drawn_as_often_give_or_take_one_and_so_is_every_photograph(task, classes):
    patches = make_natural_patches(config(task=task, count=62))
    assert patches.primary_task == task and patches.primary_classes == classes
    counts = list(patches.class_counts().values())
    assert max(counts) - min(counts) <= 1 and sum(counts) == 62
    photographs = list(patches.class_counts("photograph").values())
    assert max(photographs) - min(photographs) <= 1


def test_patches_are_rgb_uint8_at_the_ingest_size_or_grey_when_asked():
    patches = make_natural_patches(config(count=12, image_size=40))
    assert patches.images.shape == (12, 3, 40, 40) and patches.images.dtype == torch.uint8
    assert not torch.equal(patches.images[:, 0], patches.images[:, 1])  # colour, not a repeated grey plane
    assert make_natural_patches(config(count=12, channels=1)).images.shape == (12, 1, 32, 32)


def test_the_patches_have_contrast_and_the_classes_differ_as_their_names_say():
    """No flat patch (of four places the one of the most contrast is cut); a BGR patch's planes differ;
    the strongest blur is far smoother than none; the photographs differ in their colours."""
    same = {"count": 80, "seed": 5, "image_size": 64, "patch_size": 64}
    rotated = make_natural_patches(config(task="rotation", **same))
    assert rotated.images.float().std(dim=(1, 2, 3)).min() > 5
    reordered = make_natural_patches(config(task="channel_order", **same))
    swapped = (reordered.primary_labels == CHANNEL_ORDERS.index("BGR")).nonzero()[0].item()
    assert not torch.equal(reordered.images[swapped, 0], reordered.images[swapped, 2])
    blurred = make_natural_patches(config(task="blur", **same))

    def roughness(images: torch.Tensor) -> float:
        return float(images.float().diff(dim=-1).abs().mean())

    sharp, smooth = (blurred.images[blurred.primary_labels == label] for label in (0, len(BLUR_SIGMAS) - 1))
    assert roughness(sharp) > 2 * roughness(smooth)
    means = {name: load_photograph(name).mean(dim=(1, 2)) for name in ("china", "flower", "grace_hopper")}
    assert all(torch.dist(means[a], means[b]) > 0.02 for a, b in [("china", "flower"), ("flower", "grace_hopper")])


def test_a_rotated_patch_is_the_turned_copy_of_an_unturned_one():
    patches = torch.rand(4, 3, 16, 16)
    turned = label_patches(patches, "rotation", torch.tensor([0, 1, 2, 3]))
    assert torch.equal(turned[0], patches[0]) and torch.equal(turned[1], torch.rot90(patches[1], 1, dims=(-2, -1)))
    assert torch.equal(turned[2], patches[2].flip(-1).flip(-2))
    reordered = label_patches(patches, "channel_order", torch.tensor([CHANNEL_ORDERS.index("BGR")] * 4))
    assert torch.equal(reordered, patches.flip(1))


def test_refusals_name_the_field():
    with pytest.raises(ValidationError, match="count: 10 patches cannot hold two of each of the 6 classes"):
        config(task="channel_order", count=10)
    with pytest.raises(ValidationError, match="photographs: the photograph task needs at least two"):
        config(task="photograph", photographs=["china"])
    with pytest.raises(ValidationError, match="patch_size"):
        config(patch_size=512)
    with pytest.raises(ValidationError, match="task"):
        config(task="hue")
    # as conf writes it: the kind under ingest.target
    ingest = {"source": {"kind": "handwritten_digits"}, "target": {"kind": "natural_patches", "count": 3}}
    with pytest.raises(ValidationError, match="(?s)target.natural_patches.*count: 3 patches"):
        IngestParams(**ingest)
    assert IngestParams(**{**ingest, "target": {"kind": "natural_patches", "task": "blur"}}).target.count == 1200
