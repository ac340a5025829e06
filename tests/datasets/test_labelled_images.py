import torch
from kedro.io import Version

from headstart.datasets.labelled_images import LabelledImagesDataset
from headstart.ml.data.images import LabelledImages


def sample(offset: int) -> LabelledImages:
    return LabelledImages(
        images=torch.full((4, 1, 3, 3), offset, dtype=torch.uint8),
        labels={"digit": torch.tensor([0, 1, 1, 0]), "bold": torch.tensor([1, -1, 0, 1])},
        classes={"digit": ["zero", "one"], "bold": ["no", "yes"]},
    )


def test_round_trip_keeps_tensors_task_order_and_class_names(tmp_path):
    dataset = LabelledImagesDataset(filepath=str(tmp_path / "set.safetensors"))
    dataset.save(sample(7))
    loaded = dataset.load()
    assert torch.equal(loaded.images, sample(7).images)
    assert list(loaded.labels) == ["digit", "bold"] and loaded.classes == sample(7).classes
    assert torch.equal(loaded.labels["bold"], torch.tensor([1, -1, 0, 1]))


def test_versions_are_kept_and_loadable(tmp_path):
    path = str(tmp_path / "set.safetensors")
    LabelledImagesDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(sample(1))
    LabelledImagesDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(sample(2))
    latest = LabelledImagesDataset(filepath=path, version=Version(None, None)).load()
    first = LabelledImagesDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert int(latest.images[0, 0, 0, 0]) == 2 and int(first.images[0, 0, 0, 0]) == 1


def test_preview_tables_images_per_class_of_the_primary_task(tmp_path):
    dataset = LabelledImagesDataset(filepath=str(tmp_path / "set.safetensors"))
    dataset.save(sample(0))
    preview = dataset.preview()
    assert preview["columns"] == ["class", "images"]
    assert preview["data"] == [["zero", 2], ["one", 2]]
