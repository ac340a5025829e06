"""Seeded, stratified splits and k-labels-per-class draws, each refusing data it cannot split honestly."""

from __future__ import annotations

import torch
from sklearn.model_selection import train_test_split

from headstart.ml.data.images import MISSING_LABEL, LabelledImages
from headstart.ml.errors import InvalidDataError


def stratified_split(
    data: LabelledImages, held_out_fraction: float, seed: int, name: str
) -> tuple[LabelledImages, LabelledImages]:
    """(kept, held out), stratified by the primary task; every class needs two images at least."""
    too_small = {cls: n for cls, n in data.class_counts().items() if n < 2}
    if too_small:
        cls, n = next(iter(too_small.items()))
        raise InvalidDataError(f"{name}: class '{cls}' has {n} image(s); a stratified split needs at least 2 per class")
    kept, held = train_test_split(
        torch.arange(len(data)).numpy(),
        test_size=held_out_fraction,
        random_state=seed,
        stratify=data.primary_labels.numpy(),
    )
    return data.subset(sorted(kept)), data.subset(sorted(held))


def check_classes_present(train: LabelledImages, other: LabelledImages, other_name: str) -> None:
    """Every class with training images must be evaluated too."""
    train_counts = train.class_counts()
    missing = [cls for cls, n in other.class_counts().items() if n == 0 and train_counts[cls] > 0]
    if missing:
        raise InvalidDataError(
            f"class '{missing[0]}' is in the training data but absent from the {other_name} split"
            + (f" (also absent: {missing[1:]})" if len(missing) > 1 else "")
        )


def split_target(
    pool: LabelledImages,
    test: LabelledImages | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, LabelledImages]:
    """Train pool / validation / test. A separately given test set is used as is."""
    if test is None:
        pool, test = stratified_split(pool, test_fraction, seed, "target")
    elif test.classes != pool.classes:
        raise InvalidDataError(
            f"target test classes {test.primary_classes} differ from the train classes {pool.primary_classes}"
        )
    train_pool, validation = stratified_split(pool, validation_fraction, seed, "target train pool")
    check_classes_present(train_pool, test, "test")
    check_classes_present(train_pool, validation, "validation")
    return {"train_pool": train_pool, "validation": validation, "test": test}


def labelled_indices(
    pool: LabelledImages,
    labels_per_class: int | str,
    seed: int,
    pool_name: str = "target train pool",
    field: str = "labels_per_class",
) -> torch.Tensor:
    """Indices of k examples per class of the primary task, drawn without replacement; 'all': every one.
    With one seed, the draws of growing k are nested."""
    if labels_per_class == "all":
        return torch.arange(len(pool))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for index, (cls, count) in enumerate(pool.class_counts().items()):
        if count < labels_per_class:
            raise InvalidDataError(
                f"class '{cls}' has {count} image(s) in the {pool_name}, fewer than {field}={labels_per_class}"
            )
        members = torch.nonzero(pool.primary_labels == index).flatten()
        chosen.append(members[torch.randperm(count, generator=generator)[:labels_per_class]])
    return torch.cat(chosen).sort().values


def draw_labelled_subset(
    pool: LabelledImages,
    labels_per_class: int | str,
    seed: int,
    pool_name: str = "target train pool",
    field: str = "labels_per_class",
) -> LabelledImages:
    """k labelled examples per class of the primary task (`labelled_indices`); 'all' keeps the pool."""
    if labels_per_class == "all":
        return pool
    return pool.subset(labelled_indices(pool, labels_per_class, seed, pool_name, field))


def without_labels(data: LabelledImages) -> LabelledImages:
    """The same images with every label dropped (-1), the class lists kept."""
    return LabelledImages(
        data.images,
        {task: torch.full_like(labels, MISSING_LABEL) for task, labels in data.labels.items()},
        data.classes,
    )


def unlabelled_remainder(pool: LabelledImages, labels_per_class: int | str, seed: int) -> LabelledImages:
    """The train pool's images that the draw of k labels per class left out, their labels dropped:
    the unlabelled target images a practitioner has beside the few they labelled."""
    rest = torch.ones(len(pool), dtype=torch.bool)
    rest[labelled_indices(pool, labels_per_class, seed)] = False
    return without_labels(pool.subset(torch.nonzero(rest).flatten()))


def draw_label_budget(
    train_pool: LabelledImages,
    validation_pool: LabelledImages,
    labels_per_class: int | str,
    validation_labels_per_class: int | str,
    seed: int,
) -> tuple[LabelledImages, LabelledImages]:
    """The labels one budget may use: k per class to train on, from the train pool, and the
    validation labels (`"same"`: k again) from the validation split, both drawn with `seed`."""
    validation_k = labels_per_class if validation_labels_per_class == "same" else validation_labels_per_class
    field = (
        "labels_per_class (validation_labels_per_class: same)"
        if validation_labels_per_class == "same"
        else "validation_labels_per_class"
    )
    train = draw_labelled_subset(train_pool, labels_per_class, seed)
    try:
        validation = draw_labelled_subset(validation_pool, validation_k, seed, "target validation split", field)
    except InvalidDataError as error:
        raise InvalidDataError(f"{error}; lower it, or raise ingest.split.target_validation_fraction") from None
    return train, validation


def labels_used_per_class(train: LabelledImages, validation: LabelledImages) -> float:
    """Training plus validation labels per class: what a budget really costs."""
    return (len(train) + len(validation)) / len(train.primary_classes)


def random_split(
    data: LabelledImages, validation: float, test: float, seed: int
) -> tuple[LabelledImages, LabelledImages, LabelledImages]:
    """(train, validation, test) of a seeded random permutation, `validation` and `test` the fractions
    held out (rounded); not stratified, for data whose labels are many tasks, some of them missing."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_test, n_validation = round(test * len(data)), round(validation * len(data))
    return (
        data.subset(order[n_test + n_validation :]),
        data.subset(order[n_test : n_test + n_validation]),
        data.subset(order[:n_test]),
    )
