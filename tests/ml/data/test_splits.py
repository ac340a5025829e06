import pytest
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import draw_labelled_subset, random_split, split_target
from headstart.ml.errors import InvalidDataError


def images(labels, classes=("a", "b", "c")):
    labels = torch.tensor(labels)
    pixels = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return LabelledImages(pixels, {"label": labels}, {"label": list(classes)})


def test_split_is_stratified_seeded_and_disjoint():
    pool = images([0, 1, 2] * 20)
    first, second = split_target(pool, None, 0.25, 0.3, seed=1), split_target(pool, None, 0.25, 0.3, seed=1)
    assert torch.equal(first["test"].images, second["test"].images)
    ids = [set(part.images[:, 0, 0, 0].tolist()) for part in first.values()]
    assert sum(map(len, ids)) == 60 and len(set.union(*ids)) == 60
    assert all(n > 0 for part in first.values() for n in part.class_counts().values())


def test_class_in_train_absent_from_given_test_names_the_class():
    with pytest.raises(InvalidDataError, match=r"class 'c' is in the training data but absent from the test split"):
        split_target(images([0, 1, 2] * 10), images([0, 1] * 5), 0.2, 0.3, seed=0)


def test_k_labels_per_class():
    subset = draw_labelled_subset(images([0, 1, 2] * 10), 4, seed=0)
    assert subset.class_counts() == {"a": 4, "b": 4, "c": 4}
    assert torch.equal(subset.images, draw_labelled_subset(images([0, 1, 2] * 10), 4, seed=0).images)


def test_all_keeps_the_pool():
    pool = images([0, 1, 2] * 3)
    assert draw_labelled_subset(pool, "all", seed=0) is pool


def test_fewer_images_than_k_names_the_class():
    with pytest.raises(
        InvalidDataError, match=r"class 'c' has 2 image\(s\) in the target train pool, fewer than labels_per_class=3"
    ):
        draw_labelled_subset(images([0, 1, 2, 0, 1, 2, 0, 1]), 3, seed=0)


def test_a_label_budget_draws_as_many_validation_labels_per_class_from_the_validation_split():
    from headstart.ml.data.splits import draw_label_budget, labels_used_per_class

    pool, validation_pool = images([0, 1, 2] * 10), images([0, 1, 2] * 4)
    train, validation = draw_label_budget(pool, validation_pool, 2, "same", seed=3)
    assert list(validation.class_counts().values()) == [2, 2, 2] and len(train) == 6
    assert labels_used_per_class(train, validation) == 4
    train, validation = draw_label_budget(pool, validation_pool, 2, "all", seed=3)
    assert len(validation) == 12
    with pytest.raises(
        InvalidDataError,
        match=r"class 'a' has 4 image\(s\) in the target validation split, fewer than "
        r"labels_per_class \(validation_labels_per_class: same\)=5.*target_validation_fraction",
    ):
        draw_label_budget(pool, validation_pool, 5, "same", seed=3)


def test_random_split_holds_out_the_rounded_fractions_disjointly_and_is_seeded():
    data = images([0, 1, 2] * 10)  # image i has pixels i
    train, validation, test = random_split(data, 0.2, 0.3, seed=4)
    assert (len(train), len(validation), len(test)) == (15, 6, 9)
    ids = [set(split.images[:, 0, 0, 0].tolist()) for split in (train, validation, test)]
    assert set.union(*ids) == set(range(30)) and sum(map(len, ids)) == 30
    again = random_split(data, 0.2, 0.3, seed=4)
    assert torch.equal(again[2].images, test.images)
    assert not torch.equal(random_split(data, 0.2, 0.3, seed=5)[2].images, test.images)
