import math

import numpy as np
import pytest
import torch

from headstart.ml.calibration import (
    accuracy_at_coverage,
    aurc,
    calibration_record,
    expected_calibration_error,
    fit_temperature,
    nll,
    pooled_bins,
    probabilities,
    reliability_bins,
)


def over_confident(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 5-class model right about 60 % of the time whose logits are 8 times too large: over-confident."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (count,), generator=generator)
    logits = torch.randn(count, 5, generator=generator)
    logits[torch.arange(count), labels] += 1.5
    return 8 * logits, labels


def test_temperature_scaling_lowers_the_nll_of_an_over_confident_model_and_keeps_its_argmax():
    validation, validation_labels = over_confident(400, seed=0)
    test, test_labels = over_confident(400, seed=1)
    temperature = fit_temperature(validation, validation_labels)
    assert temperature > 2  # softened: T > 1 divides the too-large logits
    assert nll(test, test_labels, temperature) < 0.5 * nll(test, test_labels)
    assert torch.equal(probabilities(test, temperature).argmax(1), test.argmax(1))
    record = calibration_record(test, test_labels, temperature)
    assert record["ece_calibrated"] < record["ece"] / 2


def test_an_under_confident_model_is_sharpened_and_a_fit_never_worsens_validation():
    validation, labels = over_confident(400, seed=0)
    assert fit_temperature(validation / 40, labels) < 1  # logits 5 times too small: T < 1 sharpens
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(50, 5, generator=generator)
    fitted = fit_temperature(noise, torch.randint(0, 5, (50,), generator=generator))
    assert 0.05 <= fitted <= 20
    right = torch.eye(5)[torch.arange(20) % 5] * 3  # every validation label right: the NLL falls as T → 0
    assert fit_temperature(right, torch.arange(20) % 5) == 1.0  # no evidence for any T: none applied
    one_wrong = torch.arange(20) % 5
    one_wrong[0] = 1
    assert 0.05 <= fit_temperature(right, one_wrong) < 1  # a finite minimum: fitted
    assert fit_temperature(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)) == 1.0


def test_ece_equals_the_hand_computed_binned_top_label_error():
    predicted = torch.tensor([[0.95, 0.05], [0.05, 0.95], [0.62, 0.38], [0.45, 0.55]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1])
    # 15 bins: confidence 0.95 twice in (14/15, 1] (one right: accuracy 0.5), 0.62 in (9/15, 10/15] and
    # 0.55 in (8/15, 9/15] (both right)
    by_hand = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.62) + 1 / 4 * abs(1 - 0.55)
    assert expected_calibration_error(predicted, labels) == pytest.approx(by_hand)  # 0.4325
    binned = reliability_bins(predicted, labels)
    assert binned["count"][14] == 2 and binned["count"][9] == 1 and binned["count"][8] == 1
    assert pooled_bins([binned, binned])["count"][14] == 4


def test_aurc_and_accuracy_at_coverage_equal_the_hand_computed_curve():
    confidence = np.array([0.7, 0.9, 0.6, 0.8])
    correct = np.array([1, 1, 1, 0])
    # most confident first: 0.9 right, 0.8 wrong, 0.7 right, 0.6 right → risks 0, 1/2, 1/3, 1/4
    assert aurc(confidence, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert accuracy_at_coverage(confidence, correct, [0.25, 0.5, 1.0]) == pytest.approx([1.0, 0.5, 0.75])
    # a tie has no order: its error is spread over it (0.5 each), whatever order the images came in
    assert aurc(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1])) == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert aurc(np.array([0.9, 0.9, 0.5]), np.array([0, 1, 1])) == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert math.isnan(aurc(np.zeros(0), np.zeros(0)))
