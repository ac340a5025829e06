"""Scores that predict, before any training, how well a source model's features will serve the target
labels, and measures of how far the source domain is from the target's.

Higher is better for every transferability score (LogME, LEEP, NCE, H-score, k-NN accuracy); for the
domain measures (proxy A-distance, MMD) lower means more similar. Scores disagree across setups
(Agostinelli et al., ECCV 2022): read them against measured accuracy (`advice_audit.rank_correlations`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

LOGME_TOLERANCE = 1e-8  # relative change of α/β at which the fixed point is taken as reached
LOGME_MAX_ITERATIONS = 1000
LOGME_FLOOR = 1e-10  # added to the residual and to n − γ, as the authors' code adds to the residual
LOGME_T_CEILING = 1e12  # α/β this far above FᵀF's eigenvalues: the features explain nothing


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
    ICML 2021): per class c, the Bayesian linear model y_c ≈ F·w with prior w ~ N(0, α⁻¹I) and noise
    precision β, its evidence maximised over α, β by the fixed point γ = Σ βσᵢ²/(α + βσᵢ²),
    α = γ/mᵀm, β = (n − γ)/‖Fm − y‖²; the score is the maximised log evidence / n, averaged over classes.

    One thin SVD of F serves every class and iteration: with F = U·diag(s)·Vᵀ and x = Uᵀy, the
    posterior mean's norm and the residual are sums over the singular values, so nothing d×d is
    inverted. Everything is written in t = α/β, so features that explain nothing (the evidence then
    grows as α → ∞, w → 0) approach their limit instead of overflowing; the log determinant runs
    over all d eigenvalues of FᵀF (those beyond F's rank are 0). Checked once against the authors'
    implementation (github.com/thuml/LogME, its fixed point run to convergence) on the 12 per-block
    feature matrices of the default candidates: relative difference ≤ 1.3e-7; their default stop after
    11 iterations differs by up to 9 % where the iteration has not converged yet."""
    features = np.asarray(features, dtype=np.float64)
    n, d = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    eigenvalues = np.zeros(d)
    eigenvalues[: len(s)] = s**2
    sigma2 = s**2
    ceiling = LOGME_T_CEILING * max(float(sigma2.max()), 1.0)  # beyond it w is 0 to float precision

    def evidence_at(t: float, x2: np.ndarray, outside: float) -> tuple[float, float]:
        """The log evidence at α = tβ with β at its fixed-point value, and the next fixed-point t."""
        gamma = float((eigenvalues / (eigenvalues + t)).sum())  # γ = Σ βσᵢ²/(α + βσᵢ²)
        mean_norm2 = float((sigma2 * x2 / (sigma2 + t) ** 2).sum())  # mᵀm
        residual2 = float((x2 * (t / (sigma2 + t)) ** 2).sum()) + outside  # ‖Fm − y‖²
        # With fewer images than feature dimensions (a ResNet's 512 on a few labels) the fit can
        # interpolate: γ → n and the residual → 0. Floored as the authors' code floors the residual.
        beta = max(n - gamma, LOGME_FLOOR) / (residual2 + LOGME_FLOOR)
        alpha = t * beta
        # d/2·log α − ½Σ log(α + βσᵢ²) = −½Σ log(1 + σᵢ²/t): stable as α grows without bound
        log_evidence = (
            n / 2 * np.log(beta)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * residual2
            - alpha / 2 * mean_norm2
            - np.log1p(eigenvalues / t).sum() / 2
        )
        next_t = (gamma / mean_norm2) / beta if mean_norm2 > 0 else ceiling  # α/β after one fixed-point step
        return float(log_evidence), next_t

    evidences = []
    for label in np.unique(labels):
        y = (labels == label).astype(np.float64)
        x2 = (u.T @ y) ** 2
        outside = max(float(y @ y - x2.sum()), 0.0)  # the part of y no feature direction spans
        t = 1.0
        evidence, next_t = evidence_at(t, x2, outside)
        for _ in range(LOGME_MAX_ITERATIONS):
            t = min(next_t, ceiling)
            previous, (evidence, next_t) = evidence, evidence_at(t, x2, outside)
            # α/β settled, or (features that explain nothing: t grows without end) the evidence has
            if abs(next_t - t) <= LOGME_TOLERANCE * t or abs(evidence - previous) <= LOGME_TOLERANCE * abs(evidence):
                break
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def leep(source_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020): the mean log-likelihood of the expected empirical predictor
    Σ_z P̂(y | z)·θ(x)_z, where θ(x) is the source model's softmax over its own classes z and
    P̂(y | z) comes from the empirical joint P̂(y, z) = (1/n)Σᵢ θ(xᵢ)_z·[yᵢ = y]. Needs the source head."""
    theta = np.asarray(source_probabilities, dtype=np.float64)
    classes, indices = np.unique(labels, return_inverse=True)
    joint = np.zeros((len(classes), theta.shape[1]))
    np.add.at(joint, indices, theta)
    joint /= len(theta)
    conditional = joint / joint.sum(axis=0, keepdims=True)  # P̂(y | z)
    expected = (theta * conditional[indices]).sum(axis=1)
    return float(np.log(expected).mean())


def nce(source_predictions: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al., "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019):
    −H(Y | Z), the negative conditional entropy of the target labels y given the source model's hard
    predictions z, from their empirical joint. Needs the source head."""
    _, y = np.unique(labels, return_inverse=True)
    _, z = np.unique(source_predictions, return_inverse=True)
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= joint.sum()
    given = joint / joint.sum(axis=0, keepdims=True)  # P(y | z)
    present = joint > 0
    return float((joint[present] * np.log(given[present])).sum())


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer
    Learning", ICIP 2019): tr(cov(f)⁻¹ · cov(E[f | y])). The pseudo-inverse stands in for the inverse
    when features are collinear (a ReLU feature that is always 0, fewer images than dimensions)."""
    features = np.asarray(features, dtype=np.float64)
    features = features - features.mean(axis=0)
    classes, indices = np.unique(labels, return_inverse=True)
    class_means = np.stack([features[indices == c].mean(axis=0) for c in range(len(classes))])
    conditional = class_means[indices]  # each image replaced by its class's mean feature
    covariance = np.cov(features, rowvar=False, bias=True)
    between = np.cov(conditional, rowvar=False, bias=True)
    return float(np.trace(np.linalg.pinv(covariance, hermitian=True) @ between))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, neighbours: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of plain k-nearest neighbours (Euclidean) on the features: in a study of
    23 scores over 42,000 experiments (arXiv 2503.18528, 2025) it ranked models better than the
    specialised scores and costs less. Folds are stratified and as many as the rarest class allows
    (at least 2); k shrinks when a training fold is smaller than k."""
    _, counts = np.unique(labels, return_counts=True)
    splits = max(2, min(folds, int(counts.min())))
    smallest_training_fold = len(labels) - int(np.ceil(len(labels) / splits))
    classifier = KNeighborsClassifier(n_neighbors=max(1, min(neighbours, smallest_training_fold)))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, features, labels, cv=cv).mean())


def proxy_a_distance(source: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Proxy A-distance (Ben-David et al., "Analysis of Representations for Domain Adaptation",
    NeurIPS 2007): 2(1 − 2ε), ε the cross-validated error of a linear (logistic regression) classifier
    telling source from target features. 0: indistinguishable, 2: separable. Not clipped: a value just
    below 0 is chance-level error seen through finite folds."""
    features = np.concatenate([source, target])
    domains = np.r_[np.zeros(len(source)), np.ones(len(target))]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    error = 1.0 - float(cross_val_score(classifier, features, domains, cv=cv).mean())
    return 2.0 * (1.0 - 2.0 * error)


def mmd(source: np.ndarray, target: np.ndarray) -> float:
    """Squared maximum mean discrepancy (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012), the
    unbiased estimate (MMD²_u: the kernel's diagonal left out, so it can dip below 0 for two samples of
    one distribution), with an RBF kernel exp(−‖a − b‖²/2h²) whose bandwidth h is the median distance
    between the pooled points (the median heuristic)."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    bandwidth = float(np.median(pdist(np.concatenate([source, target])))) or 1.0
    gamma = 1.0 / (2.0 * bandwidth**2)
    m, n = len(source), len(target)
    within_source = rbf_kernel(source, gamma=gamma)
    within_target = rbf_kernel(target, gamma=gamma)
    between = rbf_kernel(source, target, gamma=gamma)
    return float(
        (within_source.sum() - np.trace(within_source)) / (m * (m - 1))
        + (within_target.sum() - np.trace(within_target)) / (n * (n - 1))
        - 2.0 * between.mean()
    )
