"""A folder larger than memory: images stay on disk, decoded per batch, and feed the same fit."""

import numpy as np
import pytest
import torch
from PIL import Image

from headstart.datasets.labelled_images import LabelledImagesDataset
from headstart.ml.data.image_files import ImageFiles
from headstart.ml.data.image_folder import load_image_folder
from headstart.ml.models import SmallCNN
from headstart.ml.training import TrainConfig, evaluate, fit


def write_folder(root, per_class=10, size=20):
    generator = np.random.default_rng(0)
    for label, name in enumerate(["a", "b", "c"]):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = generator.integers(0, 80, (size, size, 3), dtype=np.uint8)
            image[label * 5 : label * 5 + 4] = 250  # a bright band per class: learnable
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


def test_a_streamed_folder_decodes_the_same_pixels_as_the_in_memory_one_and_selects_on_disk(tmp_path):
    root = write_folder(tmp_path / "photos")
    in_memory = load_image_folder(root, 16, 1)
    streamed = load_image_folder(root, 16, 1, stream=True)
    assert isinstance(streamed.images, ImageFiles) and streamed.images.shape == in_memory.images.shape
    assert torch.equal(streamed.images[torch.tensor([0, 7, 29])], in_memory.images[torch.tensor([0, 7, 29])])
    assert torch.equal(streamed.images[3], in_memory.images[3])
    chosen = streamed.subset([29, 1])
    assert isinstance(chosen.images, ImageFiles) and torch.equal(chosen.in_memory().images, in_memory.images[[29, 1]])
    assert torch.equal(chosen.labels["label"], torch.tensor([2, 0]))
    joined = chosen.concat(streamed.subset([5]))
    assert len(joined) == 3 and torch.equal(joined.images[2], in_memory.images[5])
    assert isinstance(load_image_folder(root, 16, 1, stream=None, stream_above_bytes=100).images, ImageFiles)
    assert isinstance(load_image_folder(root, 16, 1, stream=None).images, torch.Tensor)  # small: in memory


def test_a_streamed_set_is_catalogued_as_its_file_list_not_its_pixels(tmp_path):
    root = write_folder(tmp_path / "photos")
    streamed = load_image_folder(root, 16, 3, stream=True)
    dataset = LabelledImagesDataset(filepath=str(tmp_path / "set.safetensors"))
    dataset.save(streamed)
    assert (tmp_path / "set.safetensors").stat().st_size < 16 * 16 * 3 * len(streamed)
    loaded = dataset.load()
    assert isinstance(loaded.images, ImageFiles) and loaded.classes == streamed.classes
    assert torch.equal(loaded.images[torch.arange(30)], streamed.images[torch.arange(30)])


def test_fit_on_images_streamed_by_dataloader_workers_equals_fit_in_memory(tmp_path):
    root = write_folder(tmp_path / "photos")
    in_memory, streamed = load_image_folder(root, 16, 1), load_image_folder(root, 16, 1, stream=True)
    streamed.images.workers = 2
    config = TrainConfig(epochs=3, batch_size=8, min_batches_per_epoch=5, progress=False, device="cpu", seed=3)
    models = []
    for data in (in_memory, streamed):
        torch.manual_seed(0)
        model = SmallCNN(in_channels=1, num_classes=3, widths=(4, 8))
        fit(model, data.primary_pairs(), data.primary_pairs(), config)
        models.append(model)
    for name, tensor in models[0].state_dict().items():
        torch.testing.assert_close(tensor, models[1].state_dict()[name], msg=name)
    measured = [evaluate(m, d.images, d.primary_labels)["accuracy"] for m, d in zip(models, (in_memory, streamed))]
    assert measured[0] == pytest.approx(measured[1])
