"""Thin nodes over headstart.ml.data: every check that can refuse the data runs before any save."""

from __future__ import annotations

from matplotlib.figure import Figure

from headstart.ml.data.handwritten import load_handwritten_digits
from headstart.ml.data.image_folder import load_image_folder, load_unlabelled_folder
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.natural_patches import NaturalPatchesConfig, make_natural_patches
from headstart.ml.data.printed import PrintedDigitsConfig, render_printed_digits
from headstart.ml.data.shifts import shift_domain
from headstart.ml.data.splits import draw_label_budget, split_target, stratified_split, unlabelled_remainder
from headstart.ml.data.torchvision_sets import load_torchvision_dataset
from headstart.ml.plots import plot_sample_grid
from headstart.params import DataSourceParams, ImageParams, IngestParams


def _load_data_source(source: DataSourceParams, image: ImageParams) -> dict[str, LabelledImages]:
    """{'pool': images} plus {'test': images} when the source brings its own test split, and
    {'unlabelled': images} when an image folder names an `unlabelled_root`."""
    size, channels = image.size, image.channels
    if source.kind == "printed_digits":
        settings = source.model_dump(exclude={"kind", "task"})
        rendered = render_printed_digits(PrintedDigitsConfig(image_size=size, channels=channels, **settings))
        task = rendered.primary_task if source.task == "character" else source.task
        return {"pool": rendered.with_primary_task(task)}
    if source.kind == "handwritten_digits":
        return {"pool": load_handwritten_digits(size, channels)}
    if source.kind == "natural_patches":
        settings = source.model_dump(exclude={"kind"})
        return {"pool": make_natural_patches(NaturalPatchesConfig(image_size=size, channels=channels, **settings))}
    if source.kind == "torchvision":

        def load(split: str) -> LabelledImages:
            return load_torchvision_dataset(
                source.name, split, source.root, source.download, size, channels, source.limit
            )

        loaded = {"pool": load(source.split)}
        if source.test_split:
            loaded["test"] = load(source.test_split)
        return loaded
    streaming = {"stream": source.stream_setting(), "stream_above_bytes": int(source.stream_above_gib * 2**30)}
    loaded = {"pool": load_image_folder(source.root, size, channels, source.classes, **streaming)}
    if source.test_root:
        loaded["test"] = load_image_folder(
            source.test_root, size, channels, loaded["pool"].primary_classes, every_class_required=False, **streaming
        )
    if source.unlabelled_root:
        loaded["unlabelled"] = load_unlabelled_folder(source.unlabelled_root, size, channels, loaded["pool"])
    return loaded


def load_source_images(ingest: IngestParams) -> LabelledImages:
    return _load_data_source(ingest.source, ingest.image)["pool"]


def load_target_images(ingest: IngestParams) -> dict[str, LabelledImages]:
    loaded = _load_data_source(ingest.target, ingest.image)
    return {
        part: shift_domain(images, ingest.target_shift, stream) for stream, (part, images) in enumerate(loaded.items())
    }


def split_source_and_target(
    source_images: LabelledImages, target_images: dict[str, LabelledImages], ingest: IngestParams
) -> tuple[LabelledImages, ...]:
    """All eight model inputs at once, so a refused target saves no new source version either.
    The validation labels are drawn from the validation split like the training labels, and count.
    The unlabelled target images are the train pool's images left unlabelled by the draw (plus an
    image folder's `unlabelled_root`): only the strategies that say they use them see them."""
    split = ingest.split
    source_train, source_validation = stratified_split(
        source_images, split.source_validation_fraction, split.seed, "source"
    )
    target = split_target(
        target_images["pool"],
        target_images.get("test"),
        split.target_validation_fraction,
        split.target_test_fraction,
        split.seed,
    )
    target_train, target_validation = draw_label_budget(
        target["train_pool"],
        target["validation"],
        split.labels_per_class,
        split.validation_labels_per_class,
        split.seed,
    )
    unlabelled = unlabelled_remainder(target["train_pool"], split.labels_per_class, split.seed)
    if "unlabelled" in target_images:
        unlabelled = unlabelled.concat(target_images["unlabelled"])
    # The labelled draws are k per class: in memory even when the folder streams from disk.
    target_train, target_validation = target_train.in_memory(), target_validation.in_memory()
    return (
        source_train,
        source_validation,
        target["train_pool"],
        target_train,
        target["validation"],
        target_validation,
        target["test"],
        unlabelled,
    )


def summarise_datasets(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    target_train_pool: LabelledImages,
    target_train: LabelledImages,
    target_validation_pool: LabelledImages,
    target_validation: LabelledImages,
    target_test: LabelledImages,
    target_unlabelled: LabelledImages,
    ingest: IngestParams,
) -> tuple[dict, Figure]:
    """Images per class and split, image shape, and a grid of sample source and target images."""
    splits = {
        "source_train": source_train,
        "source_validation": source_validation,
        "target_train_pool": target_train_pool,
        "target_train": target_train,
        "target_validation_pool": target_validation_pool,
        "target_validation": target_validation,
        "target_test": target_test,
        "target_unlabelled": target_unlabelled,
    }
    statistics = {
        name: {
            "images": len(data),
            "images_per_class": data.class_counts(),
            "image_channels": int(data.images.shape[1]),
            "image_height": int(data.images.shape[2]),
            "image_width": int(data.images.shape[3]),
        }
        for name, data in splits.items()
    }
    grid = plot_sample_grid({"source": source_train, "target": target_train}, ingest.samples_per_grid)
    return statistics, grid
