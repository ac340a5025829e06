"""Probabilities a user can act on: temperature scaling, the calibration error, and selective prediction.

- **Temperature scaling** (Guo et al., ICML 2017): one scalar T > 0 divides the logits, fitted by LBFGS
  on the validation NLL; the argmax, hence the accuracy, is unchanged by any T > 0.
- **ECE**: the standard binned top-label estimator of Guo et al.: Σ_b (n_b/n)·|acc_b − conf_b| over 15
  equal-width bins ((m−1)/M, m/M] of the maximum probability (the confidence), acc_b the share of the
  bin's predictions that are right (../shared/REFERENCE.md).
- **Selective prediction** (Geifman & El-Yaniv, NeurIPS 2017): answer the most confident images first;
  the risk-coverage curve is the error among those answered against their share, and AURC its area.

A k-nearest-neighbours model's "logits" are smoothed log vote shares (headstart.ml.models.pixels), so
softmax(logits/T) is the vote shares raised to the power 1/T and renormalised: T > 1 flattens the votes,
T < 1 sharpens them. It is calibrated by the same fit, and means that. The classical references are
refitted on the training + validation labels, so they usually answer all of validation right, and then
keep T = 1 (see `fit_temperature`): their rows stay uncalibrated, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

BINS = 15
TEMPERATURE_BOUNDS = (0.05, 20.0)  # a guard: validation with one mistake among many sharp answers wants T near 0
COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))  # the risk-coverage curve's points: 5 %, ..., 100 %


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T minimising the NLL of softmax(logits/T) on labelled (validation) logits, by LBFGS over
    log T (so T stays positive), within TEMPERATURE_BOUNDS. T = 1 (no scaling) without the evidence to
    fit one: no labels, or every validation image answered right (then the NLL falls without end as
    T → 0, and a fitted T would make the test's mistakes arbitrarily confident); and when the fit is not
    better than T = 1 on validation (a failed search never makes the probabilities worse there)."""
    logits, labels = logits.detach().double().cpu(), labels.detach().long().cpu()
    if len(labels) == 0 or bool((logits.argmax(1) == labels).all()):
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted = float(log_t.detach().exp())
    temperature = min(max(fitted, TEMPERATURE_BOUNDS[0]), TEMPERATURE_BOUNDS[1]) if math.isfinite(fitted) else 1.0
    return temperature if nll(logits, labels, temperature) <= nll(logits, labels, 1.0) else 1.0


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits/T)."""
    return float(F.cross_entropy(logits.double() / temperature, labels.long()))


def probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return torch.softmax(logits.double() / temperature, dim=1)


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> dict[str, list]:
    """Per equal-width confidence bin ((m−1)/M, m/M]: its images, how many are right and their summed
    confidence. Sums, so seeds pool by adding them (the reliability diagram over a strategy's seeds)."""
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels.to(predicted.device)).double()
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)  # a confidence of 1 is the last bin
    return {
        "count": torch.bincount(index, minlength=bins).tolist(),
        "correct": torch.bincount(index, weights=correct, minlength=bins).tolist(),
        "confidence": torch.bincount(index, weights=confidence.double(), minlength=bins).tolist(),
    }


def pooled_bins(per_seed: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """Several seeds' `reliability_bins` added up: the reliability diagram of all their test images."""
    return {key: [sum(values) for values in zip(*(b[key] for b in per_seed), strict=True)] for key in per_seed[0]}


def ece_of_bins(binned: Mapping[str, Sequence[float]]) -> float:
    """Σ_b (n_b/n)·|acc_b − conf_b| = Σ_b |right_b − Σconf_b| / n, from `reliability_bins`."""
    total = sum(binned["count"])
    return sum(abs(r - c) for r, c in zip(binned["correct"], binned["confidence"], strict=True)) / max(total, 1)


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """The binned top-label ECE (Guo et al., ICML 2017) over `bins` equal-width confidence bins."""
    return ece_of_bins(reliability_bins(probabilities, labels, bins))


def selective_risks(confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """The risk-coverage curve: at coverage i/n, the error among the i most confident answers. Tied
    confidences have no order, so each tie's errors are spread evenly over its images: the curve is the
    expectation over the orders of the ties (a 1-nearest-neighbour model's confidences all tie)."""
    confidence, errors = np.asarray(confidence, dtype=float), 1.0 - np.asarray(correct, dtype=float)
    if len(confidence) == 0:
        return np.zeros(0)
    order = np.argsort(-confidence, kind="stable")
    confidence, errors = confidence[order], errors[order]
    _, starts, sizes = np.unique(-confidence, return_index=True, return_counts=True)
    for start, size in zip(starts, sizes, strict=True):
        errors[start : start + size] = errors[start : start + size].mean()
    return np.cumsum(errors) / np.arange(1, len(errors) + 1)


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv, NeurIPS 2017): the mean of the selective
    risk over the n coverages 1/n, ..., n/n. Lower is better; a perfect ranking gives the least area
    that accuracy allows."""
    risks = selective_risks(confidence, correct)
    return float(risks.mean()) if len(risks) else math.nan


def accuracy_at_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverages: Sequence[float] = COVERAGES
) -> list[float]:
    """Accuracy among the ⌈c·n⌉ most confident answers, at each coverage c."""
    risks = selective_risks(confidence, correct)
    n = len(risks)
    return [1.0 - float(risks[max(1, math.ceil(c * n - 1e-9)) - 1]) if n else math.nan for c in coverages]


def calibration_record(
    test_logits: torch.Tensor, test_labels: torch.Tensor, temperature: float, bins: int = BINS
) -> dict:
    """What the comparison reads of one model on test: ECE and NLL before and after temperature scaling,
    AURC and accuracy at each coverage (on the calibrated confidence, the one a user sees), and the
    reliability bins of both (lists: the comparison pools them, and leaves them out of its table)."""
    labels = test_labels.long().cpu()
    raw, calibrated = probabilities(test_logits.cpu()), probabilities(test_logits.cpu(), temperature)
    raw_bins, calibrated_bins = reliability_bins(raw, labels, bins), reliability_bins(calibrated, labels, bins)
    confidence, predicted = calibrated.max(dim=1)
    correct = (predicted == labels).numpy()
    return {
        "temperature": temperature,
        "ece": ece_of_bins(raw_bins),
        "ece_calibrated": ece_of_bins(calibrated_bins),
        "nll_calibrated": nll(test_logits.cpu(), labels, temperature),
        "aurc": aurc(confidence.numpy(), correct),
        "selective_accuracy": accuracy_at_coverage(confidence.numpy(), correct),
        "reliability": {"raw": raw_bins, "calibrated": calibrated_bins},
    }
