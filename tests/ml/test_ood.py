import numpy as np
import pytest
import torch

from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.ood import (
    SCORES,
    OutOfDistribution,
    auroc,
    drawn_shapes,
    energy_score,
    fit_out_of_distribution,
    knn_score,
    logits_and_features,
    msp_score,
    normalised,
    threshold_keeping,
)
from headstart.ml.prediction import ImageClassifier, calibrate_models, classify

CONFIG = {"name": "small_cnn", "in_channels": 1, "num_classes": 3, "widths": [4, 8]}


def strokes(count: int, seed: int) -> torch.Tensor:
    """Dark 16-px images with a bright vertical bar near the left: what the toy model was trained on."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 30, (count, 1, 16, 16), dtype=torch.uint8, generator=generator)
    columns = torch.randint(3, 6, (count,), generator=generator)
    for image, column in zip(images, columns, strict=True):
        image[0, 2:14, column : column + 2] = 230
    return images


def calibrated_model() -> StoredModel:
    torch.manual_seed(0)
    stored = StoredModel.from_module(build_model(CONFIG), CONFIG, {"classes": ["a", "b", "c"], "image_size": 16})
    labels = torch.arange(40) % 3
    return calibrate_models({"m": stored}, strokes(60, seed=1), strokes(40, seed=2), labels)["m"]


def test_the_scores_rise_away_from_confident_in_distribution_logits():
    sure, unsure = torch.tensor([[9.0, 0.0, 0.0]]), torch.tensor([[0.1, 0.0, 0.0]])
    assert msp_score(sure) < msp_score(unsure) and energy_score(sure) < energy_score(unsure)
    assert energy_score(sure).item() == pytest.approx(-torch.logsumexp(sure, 1).item())
    bank = normalised(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    near, far = knn_score(torch.tensor([[2.0, 0.1]]), bank), knn_score(torch.tensor([[-1.0, -1.0]]), bank)
    assert near < far and near.item() == pytest.approx(
        float(torch.dist(normalised(torch.tensor([[2.0, 0.1]]))[0], bank[0]))
    )


def test_the_threshold_keeps_at_least_the_asked_share_and_no_more_than_it_needs():
    scores = np.random.default_rng(0).normal(size=20)
    threshold = threshold_keeping(scores, 0.95)
    assert (scores <= threshold).sum() == 19  # ⌈0.95·20⌉: one of twenty flagged
    for n in (1, 7, 33, 101):
        values = np.random.default_rng(n).normal(size=n)
        assert (values <= threshold_keeping(values, 0.95)).mean() >= 0.95


def test_the_stored_thresholds_keep_95_percent_of_validation_for_every_score():
    stored = calibrated_model()
    detector = OutOfDistribution.from_info(stored.info["out_of_distribution"])
    logits, features = logits_and_features(stored.build(), strokes(40, seed=2))
    for score in SCORES:
        kept = ~detector.flags(detector.scores(logits, features, score), score)
        assert kept.double().mean() >= 0.95, score
    assert stored.info["temperature"] > 0 and detector.bank.shape == (60, 8)  # the training images' features


def test_an_image_far_from_the_training_data_is_flagged_and_a_training_like_one_is_not():
    stored = calibrated_model()
    detector = OutOfDistribution.from_info(stored.info["out_of_distribution"])
    inside = strokes(30, seed=5)
    far = torch.full((1, 1, 16, 16), 255, dtype=torch.uint8)  # all white: nothing like a dark image with a bar
    far[0, 0, 6:10, :] = 0
    table = classify(stored.build(), torch.cat([inside, far]), ["a", "b", "c"], detector=detector, ood_score="knn")
    assert table["ood_score"].iloc[-1] > table["ood_score"].iloc[:-1].max()
    assert bool(table["out_of_distribution"].iloc[-1]) and table["out_of_distribution"].iloc[:-1].mean() < 0.5
    trained_on = strokes(60, seed=1)[0, 0]  # in the k-NN's bank: distance 0, below any threshold
    predicted = ImageClassifier(stored).predict([far[0, 0].numpy(), trained_on.numpy()])
    assert list(predicted["out_of_distribution"]) == [True, False]
    for score in ("msp", "energy"):  # the others flag by their own thresholds, the same way round
        flags = ImageClassifier(stored, ood_score=score).predict([far[0, 0].numpy()])["out_of_distribution"]
        scores = ImageClassifier(stored, ood_score=score).predict([far[0, 0].numpy()])["ood_score"]
        assert bool(flags.iloc[0]) == (scores.iloc[0] > detector.thresholds[score])


def test_auroc_counts_out_of_distribution_images_scoring_above_in_distribution_ones():
    assert auroc([0.1, 0.2], [0.3, 0.4]) == 1.0 and auroc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert auroc([0.1, 0.3], [0.2, 0.4]) == 0.75


def test_a_detector_round_trips_through_the_models_json_info():
    stored = calibrated_model()
    detector = OutOfDistribution.from_info(stored.info["out_of_distribution"])
    again = OutOfDistribution.from_info(detector.to_info())
    assert again.thresholds == detector.thresholds and torch.equal(again.bank, detector.bank)
    assert fit_out_of_distribution(stored.build(), strokes(5, 1), strokes(10, 2), 1.0, bank_limit=3).bank.shape[0] == 3


def test_drawn_shapes_are_white_on_black_drawings():
    shapes = drawn_shapes(12, seed=0)
    assert shapes.shape == (12, 32, 32) and shapes.max() == 1 and shapes[:, 0, 0].eq(0).all()
