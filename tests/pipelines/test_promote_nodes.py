"""The promotion candidate is chosen on validation; the test split only judges it (issue 10)."""

import pytest
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.models import PixelNearestNeighbours
from headstart.ml.models.stored import StoredModel
from headstart.ml.training import scale_images
from headstart.ml.transfer import CheckpointMismatchError
from headstart.pipelines.promote.nodes import choose_champion


def knn_model(strategy: str, seed: int, images, labels, validation_accuracy: float) -> StoredModel:
    model = PixelNearestNeighbours((1, 4, 4), 3, memory_size=len(images), neighbours=1)
    model.remember(scale_images(images), labels)
    config = {
        "name": "pixel_nearest_neighbours",
        "input_shape": [1, 4, 4],
        "num_classes": 3,
        "memory_size": len(images),
        "neighbours": 1,
    }
    return StoredModel.from_module(
        model, config, {"strategy": strategy, "seed": seed, "validation_accuracy": validation_accuracy}
    )


def test_the_candidate_is_the_best_on_validation_even_when_another_is_better_on_test():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (30, 1, 4, 4), dtype=torch.uint8, generator=generator)
    labels = torch.arange(30) % 3
    test = LabelledImages(images, {"digit": labels}, {"digit": ["0", "1", "2"]})
    wrong = (labels + 1) % 3  # remembers every test image with a wrong label: 0 % on test
    on_validation = {"a": knn_model("a", 0, images, wrong, 0.9), "b": knn_model("a", 1, images, wrong, 0.8)}
    on_test = {"a": knn_model("b", 0, images, labels, 0.7), "b": knn_model("b", 1, images, labels, 0.7)}
    decision, report = choose_champion(test, None, on_test, on_validation)
    assert report["candidate_strategy"] == "a" and report["candidate_seed"] == 0
    assert report["candidate_validation_accuracy"] == 0.9 and report["candidate_accuracy"] == 0.0
    assert decision["promote"]  # no champion yet: the first candidate is promoted whatever it scores


def split_and_candidates():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (30, 1, 4, 4), dtype=torch.uint8, generator=generator)
    labels = torch.arange(30) % 3
    test = LabelledImages(images, {"digit": labels}, {"digit": ["0", "1", "2"]})
    return test, {"a": knn_model("a", 0, images, labels, 0.9)}, images, labels


def test_a_champion_of_other_classes_is_kept_and_said_why():
    test, candidates, images, labels = split_and_candidates()
    champion = knn_model("old", 0, images, labels, 0.5)
    champion.info["classes"] = ["cat", "dog", "bird"]
    decision, report = choose_champion(test, {"model": champion, "version": "4"}, candidates)
    assert not decision["promote"] and "it classifies ['cat', 'dog', 'bird']" in report["reason"]


def test_a_champion_that_fails_to_evaluate_for_another_reason_stops_the_promotion():
    test, candidates, images, labels = split_and_candidates()
    broken = knn_model("old", 0, images, labels, 0.5)
    broken.state["memory"] = broken.state["memory"][:, :5]  # corrupt weights, same classes and channels
    with pytest.raises(CheckpointMismatchError, match="memory"):  # formerly reported as "kept it"
        choose_champion(test, {"model": broken, "version": "4"}, candidates)
