"""Each score against numbers worked out by hand from its paper's definition on matrices small enough
to check on paper, and the one ranking that must hold: features that separate the classes outrank noise."""

import math

import numpy as np
import pytest

from headstart.ml.transferability import h_score, knn_accuracy, leep, logme, mmd, nce, proxy_a_distance


def evidence(features, y, alpha, beta):
    """log p(y | F, α, β) of the Bayesian linear model, written out with matrices (You et al. 2021, eq. 2)."""
    n, d = features.shape
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    return (
        n / 2 * math.log(beta)
        + d / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * np.sum((features @ m - y) ** 2)
        - alpha / 2 * m @ m
        - np.linalg.slogdet(a)[1] / 2
    )


def fixed_point(features, y, steps=500):
    """α, β by the paper's fixed point, with the posterior mean from an explicit d×d solve (no SVD)."""
    n, d = features.shape
    eigenvalues = np.linalg.eigvalsh(features.T @ features)
    alpha, beta = 1.0, 1.0
    for _ in range(steps):
        m = beta * np.linalg.solve(alpha * np.eye(d) + beta * features.T @ features, features.T @ y)
        gamma = np.sum(beta * eigenvalues / (alpha + beta * eigenvalues))
        alpha, beta = gamma / (m @ m), (n - gamma) / np.sum((features @ m - y) ** 2)
    return alpha, beta


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    features = np.eye(3)[labels] * 2.0 + rng.normal(scale=0.7, size=(9, 3))
    return features, labels


def test_logme_is_the_mean_per_image_log_evidence_at_the_papers_fixed_point(small):
    features, labels = small
    by_hand = []
    for c in range(3):
        y = (labels == c).astype(float)
        alpha, beta = fixed_point(features, y)
        best = evidence(features, y, alpha, beta)
        for nudge in (0.8, 1.25):  # the fixed point maximises the evidence
            assert best > evidence(features, y, alpha * nudge, beta)
            assert best > evidence(features, y, alpha, beta * nudge)
        by_hand.append(best / len(y))
    assert logme(features, labels) == pytest.approx(np.mean(by_hand), rel=1e-7)


def test_logme_of_features_that_explain_nothing_stays_finite():
    labels = np.array([0, 1] * 10)
    features = np.zeros((20, 4))
    features[:, 0] = 1.0  # a constant: no feature tells the classes apart, α grows without bound
    assert np.isfinite(logme(features, labels))


def test_leep_is_the_log_of_the_expected_empirical_predictor():
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])  # source softmax over source classes z0, z1
    labels = np.array([0, 0, 1])
    # P̂(y, z) = (1/3)Σ θ_z [y_i = y]: y0 → (1.4, 0.6)/3, y1 → (0.3, 0.7)/3; P̂(z) = (1.7, 1.3)/3
    p_y0 = (1.4 / 1.7, 0.6 / 1.3)  # P̂(y0 | z0), P̂(y0 | z1)
    p_y1 = (0.3 / 1.7, 0.7 / 1.3)
    expected = [
        0.8 * p_y0[0] + 0.2 * p_y0[1],
        0.6 * p_y0[0] + 0.4 * p_y0[1],
        0.3 * p_y1[0] + 0.7 * p_y1[1],
    ]
    assert leep(theta, labels) == pytest.approx(np.mean(np.log(expected)), rel=1e-12)


def test_nce_is_minus_the_conditional_entropy_of_labels_given_source_predictions():
    labels = np.array([0, 1, 1, 1])
    predictions = np.array([7, 7, 3, 3])  # source classes by any name
    # z = 7 splits its two images between y0 and y1 (H = log 2), z = 3 is pure (H = 0): H(Y|Z) = ½ log 2
    assert nce(predictions, labels) == pytest.approx(-0.5 * math.log(2), rel=1e-12)
    assert nce(labels, labels) == pytest.approx(0.0)


def test_h_score_is_the_trace_of_inverse_feature_covariance_times_class_mean_covariance():
    features = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    labels = np.array([0, 0, 1, 1])
    # cov(f) = [[1.5, −1.5], [−1.5, 2.75]], cov(E[f|y]) = [[1, −1.5], [−1.5, 2.25]]: tr(inv · between) = 13/15
    assert h_score(features, labels) == pytest.approx(13 / 15, rel=1e-12)


def test_knn_accuracy_is_cross_validated_and_perfect_on_separated_classes():
    labels = np.repeat(np.arange(4), 3)
    separated = np.eye(4)[labels] * 10.0
    assert knn_accuracy(separated, labels, neighbours=1, folds=5) == 1.0  # 3 per class: 3 folds


def test_scores_rank_class_separating_features_above_noise():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 12)
    noise = rng.normal(size=(60, 8))
    separating = noise + np.eye(5, 8)[labels] * 3.0
    for score in (logme, h_score, knn_accuracy):
        assert score(separating, labels) > score(noise, labels), score.__name__
    informed = np.eye(5)[labels] * 0.8 + 0.04  # a source head that predicts the target classes
    blind = rng.dirichlet(np.ones(5), size=60)
    assert leep(informed, labels) > leep(blind, labels)
    assert nce(informed.argmax(axis=1), labels) > nce(blind.argmax(axis=1), labels)


def test_domain_measures_tell_one_distribution_from_two():
    rng = np.random.default_rng(2)
    source, same, shifted = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 3.0
    assert abs(proxy_a_distance(source, same)) < 0.4
    assert proxy_a_distance(source, shifted) > 1.9
    assert abs(mmd(source, same)) < 0.02 < mmd(source, shifted)


def test_logme_is_finite_when_fewer_images_than_feature_dimensions_let_the_fit_interpolate():
    generator = np.random.default_rng(0)
    features, labels = generator.normal(size=(6, 512)), np.array([0, 0, 1, 1, 2, 2])
    assert np.isfinite(logme(features, labels))
