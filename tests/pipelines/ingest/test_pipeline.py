"""The ingest pipeline on an in-memory catalog with SequentialRunner: no files, no MLflow."""

import math

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from headstart.ml.errors import InvalidDataError
from headstart.params import IngestParams
from headstart.pipelines.ingest import create_pipeline


class KeptDataset(MemoryDataset):
    """Not released after its last consumer, so the test can read every intermediate output."""

    def _release(self) -> None:
        pass


def run_ingest(**overrides):
    params = IngestParams.model_validate(
        {"source": {"kind": "printed_digits", "count": 300}, "target": {"kind": "handwritten_digits"}, **overrides}
    )
    catalog = DataCatalog({"params:ingest": MemoryDataset(params)})
    pipeline = create_pipeline()
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


def test_ingest_produces_model_inputs_and_statistics():
    outputs = run_ingest(split={"labels_per_class": 5, "target_test_fraction": 0.3})
    assert outputs["target_train"].class_counts() == {str(d): 5 for d in range(10)}
    statistics = outputs["ingest_statistics"]
    assert statistics["source_train"]["images"] + statistics["source_validation"]["images"] == 300
    assert statistics["target_test"]["images"] == math.ceil(1797 * 0.3)  # sklearn rounds the test share up
    assert statistics["target_train"]["image_height"] == 28
    assert len(outputs["ingest_sample_grid"].axes) == 40  # 2 sets × 2 rows × 10 columns


def test_too_many_labels_per_class_stops_ingest():
    with pytest.raises(InvalidDataError, match="fewer than labels_per_class=500"):
        run_ingest(split={"labels_per_class": 500})


def test_parameter_of_wrong_range_names_the_field():
    with pytest.raises(ValueError, match=r"split\.labels_per_class"):
        IngestParams.model_validate(
            {
                "source": {"kind": "handwritten_digits"},
                "target": {"kind": "handwritten_digits"},
                "split": {"labels_per_class": 0},
            }
        )


def test_unlabelled_target_images_are_the_train_pool_minus_the_labelled_ones_without_labels():
    outputs = run_ingest(split={"labels_per_class": 5})
    pool, labelled, unlabelled = outputs["target_train_pool"], outputs["target_train"], outputs["target_unlabelled"]
    assert len(unlabelled) == len(pool) - len(labelled)
    assert (unlabelled.primary_labels == -1).all() and unlabelled.primary_pairs()[0].shape[0] == 0
    flatten = lambda data: {bytes(image.numpy()) for image in data.images}  # noqa: E731
    assert flatten(labelled) | flatten(unlabelled) == flatten(pool)
    assert outputs["ingest_statistics"]["target_unlabelled"]["images"] == len(unlabelled)


def test_image_folder_target_adds_its_unlabelled_root(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        for index in range(8):
            (tmp_path / "labelled" / cls).mkdir(parents=True, exist_ok=True)
            Image.new("L", (10, 10), 40 * index).save(tmp_path / "labelled" / cls / f"{index}.png")
    (tmp_path / "unlabelled").mkdir()
    for index in range(3):
        Image.new("L", (10, 10), 7 * index).save(tmp_path / "unlabelled" / f"{index}.png")
    outputs = run_ingest(
        target={
            "kind": "image_folder",
            "root": str(tmp_path / "labelled"),
            "unlabelled_root": str(tmp_path / "unlabelled"),
        },
        split={"labels_per_class": 2, "target_test_fraction": 0.25, "target_validation_fraction": 0.34},
    )
    pool_rest = len(outputs["target_train_pool"]) - len(outputs["target_train"])
    assert len(outputs["target_unlabelled"]) == pool_rest + 3
