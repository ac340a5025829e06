import numpy as np
import pytest
import torch

from headstart.ml.errors import InvalidDataError
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import ImageClassifier, classify, encode_png, prepare_images
from headstart.ml.training import evaluate

CONFIG = {"name": "small_cnn", "in_channels": 1, "num_classes": 3, "widths": [4, 8]}


def stored_model() -> StoredModel:
    torch.manual_seed(0)
    return StoredModel.from_module(build_model(CONFIG), CONFIG, {"classes": ["a", "b", "c"], "image_size": 16})


def test_images_of_any_size_and_mode_become_the_models_input():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgba = rng.integers(0, 256, (9, 12, 4), dtype=np.uint8)
    batch = prepare_images([grey, rgba, encode_png(grey)], image_size=16, channels=1)
    assert batch.shape == (3, 1, 16, 16) and batch.dtype == torch.uint8
    assert torch.equal(batch[0], batch[2])  # an array and its PNG file are the same image


def test_a_bad_image_is_named():
    with pytest.raises(InvalidDataError, match="scan.png: not a readable image"):
        prepare_images([b"not an image"], 16, 1, names=["scan.png"])
    with pytest.raises(InvalidDataError, match="image 0: pixels must be uint8"):
        prepare_images([np.zeros((4, 4), dtype=np.float32)], 16, 1)


def test_classification_agrees_with_evaluation_and_gives_every_class_probability():
    stored = stored_model()
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    table = classify(stored.build(), images, ["a", "b", "c"])
    expected = evaluate(stored.build(), images, torch.zeros(5, dtype=torch.long))["predictions"]
    assert list(table["predicted_class"]) == [["a", "b", "c"][i] for i in expected.tolist()]
    probabilities = table[["probability_a", "probability_b", "probability_c"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(table["probability"], probabilities.max(axis=1))


def test_classifier_reads_classes_and_input_size_from_the_stored_model():
    classifier = ImageClassifier(stored_model())
    table = classifier.predict([np.full((40, 40), 255, dtype=np.uint8)])
    assert classifier.image_size == 16 and list(table.columns[:2]) == ["predicted_class", "probability"]


def test_a_pixels_model_of_rgb_images_classifies_rgb_images():
    """A pixels reference stores its channels in `input_shape`, not `in_channels`: read as grey, an RGB
    model's served predictions failed on a matrix of the wrong width."""
    config = {"name": "pixel_linear", "input_shape": [3, 8, 8], "num_classes": 2}
    stored = StoredModel.from_module(build_model(config), config, {"classes": ["x", "y"], "image_size": 8})
    classifier = ImageClassifier(stored)
    table = classifier.predict([np.zeros((8, 8, 3), dtype=np.uint8)])
    assert stored.in_channels == 3 and classifier.channels == 3 and len(table) == 1
