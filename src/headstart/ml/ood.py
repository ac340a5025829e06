"""Is an image like the ones the model was trained for? Out-of-distribution scores, each higher for an
image further from the training data, and the threshold that flags it (../shared/REFERENCE.md):

- `msp`: minus the maximum softmax probability (Hendrycks & Gimpel, ICLR 2017), the baseline; here of
  the temperature-scaled softmax, the probability the prediction reports.
- `energy`: −T·logsumexp(logits/T) at T = 1 (Liu et al., NeurIPS 2020), the free energy: a bigger sum of
  exponentiated logits than any one class's share shows.
- `knn`: the distance of the L2-normalised penultimate feature to its k-th nearest normalised training
  feature (Sun et al., ICML 2022); its training features are stored with the model.

Each score's threshold is set on the validation images: the value that keeps `keep` (95 %) of them in
distribution. `benchmarks/ood_scores.py` measures the scores' AUROC on images a digit classifier should
refuse (printed letters, drawn shapes, inverted digits); DEFAULT_SCORE is the one it found better.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from sklearn.metrics import roc_auc_score
from torch import nn

from headstart.ml.training import image_batches, model_device, scale_images

SCORES = ("msp", "energy", "knn")
DEFAULT_SCORE = "knn"
KEEP = 0.95  # of in-distribution validation images kept (not flagged)
NEIGHBOURS = 1  # the k of the k-NN distance
BANK_LIMIT = 2000  # training features kept for the k-NN distance at most (Sun et al. keep a random share too)


def msp_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return -torch.softmax(logits.double() / temperature, dim=1).max(dim=1).values


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return -temperature * torch.logsumexp(logits.double() / temperature, dim=1)


def normalised(features: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(features.double().flatten(1), dim=1)


def knn_score(features: torch.Tensor, bank: torch.Tensor, k: int = NEIGHBOURS) -> torch.Tensor:
    """Distance of each normalised feature to its k-th nearest in `bank` (normalised training features)."""
    if len(bank) == 0:
        return torch.zeros(len(features), dtype=torch.float64)
    distances = torch.cdist(normalised(features), bank.double())
    return distances.topk(min(k, len(bank)), dim=1, largest=False).values[:, -1]


def threshold_keeping(scores: torch.Tensor | np.ndarray, keep: float = KEEP) -> float:
    """The smallest score at or below which at least `keep` of `scores` lie: an image scoring above it
    is flagged, so at least that share of these (validation) images is kept."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    if len(ordered) == 0:
        return math.inf
    return float(ordered[max(1, math.ceil(keep * len(ordered) - 1e-9)) - 1])


def auroc(in_distribution: torch.Tensor | np.ndarray, out_of_distribution: torch.Tensor | np.ndarray) -> float:
    """How often an out-of-distribution image scores above an in-distribution one (ties count half)."""
    inside, outside = np.asarray(in_distribution, dtype=float), np.asarray(out_of_distribution, dtype=float)
    truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(truth, np.r_[inside, outside]))


def logits_and_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 256, features: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The logits and (when asked) the penultimate features (`forward_features`) of uint8 images, fp32, on the CPU."""
    device = model_device(model)
    model.eval()
    logits, pooled = [], []
    with torch.no_grad():
        for raw in image_batches(images, batch_size):
            batch = scale_images(raw.to(device))
            logits.append(model(batch).float().cpu())
            if features:
                pooled.append(model.forward_features(batch).float().flatten(1).cpu())
    empty = torch.zeros(0)
    return (torch.cat(logits) if logits else empty), ((torch.cat(pooled) if pooled else empty) if features else None)


def encode_bank(bank: torch.Tensor) -> dict:
    """The normalised training features as JSON: float16 bytes in base64 (a model's info is JSON)."""
    data = bank.to(torch.float16).contiguous().numpy().tobytes()
    return {"shape": list(bank.shape), "float16_base64": base64.b64encode(data).decode()}


def decode_bank(encoded: Mapping) -> torch.Tensor:
    array = np.frombuffer(base64.b64decode(encoded["float16_base64"]), dtype=np.float16)
    return torch.from_numpy(array.astype(np.float32).reshape(encoded["shape"]))


@dataclass
class OutOfDistribution:
    """What a stored model needs to score new images: each score's validation threshold, the
    temperature (the MSP is of calibrated probabilities) and the k-NN's normalised training features."""

    thresholds: dict[str, float]
    temperature: float = 1.0
    bank: torch.Tensor | None = None
    neighbours: int = NEIGHBOURS
    keep: float = KEEP

    def scores(self, logits: torch.Tensor, features: torch.Tensor | None, score: str) -> torch.Tensor:
        if score == "msp":
            return msp_score(logits, self.temperature)
        if score == "energy":
            return energy_score(logits)
        if score == "knn":
            if features is None or self.bank is None:
                raise ValueError("the k-NN score needs the images' features and the stored training features")
            return knn_score(features, self.bank, self.neighbours)
        raise ValueError(f"unknown out-of-distribution score '{score}'; known: {', '.join(SCORES)}")

    def flags(self, scores: torch.Tensor, score: str) -> torch.Tensor:
        return scores > self.thresholds[score]

    def to_info(self) -> dict:
        return {
            "thresholds": dict(self.thresholds),
            "keep": self.keep,
            "neighbours": self.neighbours,
            "temperature": self.temperature,
            **({"bank": encode_bank(self.bank)} if self.bank is not None else {}),
        }

    @classmethod
    def from_info(cls, info: Mapping) -> OutOfDistribution:
        return cls(
            thresholds={k: float(v) for k, v in info["thresholds"].items()},
            temperature=float(info.get("temperature", 1.0)),
            bank=decode_bank(info["bank"]) if "bank" in info else None,
            neighbours=int(info.get("neighbours", NEIGHBOURS)),
            keep=float(info.get("keep", KEEP)),
        )


def fit_out_of_distribution(
    model: nn.Module,
    train_images: torch.Tensor,
    validation_images: torch.Tensor,
    temperature: float,
    keep: float = KEEP,
    neighbours: int = NEIGHBOURS,
    bank_limit: int = BANK_LIMIT,
    validation_pass: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> OutOfDistribution:
    """Every score's threshold keeping `keep` of the validation images, with the k-NN's bank: the
    normalised features of the training images (a seeded random `bank_limit` of them at most).
    `validation_pass`: the validation images' (logits, features) when the caller already has them."""
    _, train_features = logits_and_features(model, train_images)
    if len(train_features) > bank_limit:
        chosen = torch.randperm(len(train_features), generator=torch.Generator().manual_seed(0))[:bank_limit]
        train_features = train_features[chosen.sort().values]
    detector = OutOfDistribution({}, temperature, normalised(train_features).float(), neighbours, keep)
    logits, features = validation_pass or logits_and_features(model, validation_images)
    detector.thresholds = {score: threshold_keeping(detector.scores(logits, features, score), keep) for score in SCORES}
    return detector


# Images a digit classifier should refuse, in the target's format (tests and benchmarks/ood_scores.py).


def drawn_shapes(count: int, seed: int = 0, canvas: int = 32) -> torch.Tensor:
    """Circles, bars, stars, crosses and boxes, white on black, float 0–1 (count × canvas × canvas),
    each at a random size, place and stroke."""
    rng = np.random.default_rng(seed)
    drawings: list[Callable[[ImageDraw.ImageDraw, float, float, float, int], None]] = [
        lambda d, x, y, r, w: d.ellipse((x - r, y - r, x + r, y + r), outline=255, width=w),
        lambda d, x, y, r, w: d.rectangle((x - r, y - w, x + r, y + w), fill=255),  # a bar
        lambda d, x, y, r, w: d.polygon(_star(x, y, r), outline=255, width=w),
        lambda d, x, y, r, w: (
            d.line((x - r, y - r, x + r, y + r), 255, w),
            d.line((x - r, y + r, x + r, y - r), 255, w),
        ),
        lambda d, x, y, r, w: d.rectangle((x - r, y - r, x + r, y + r), outline=255, width=w),
        lambda d, x, y, r, w: d.ellipse((x - r, y - r, x + r, y + r), fill=255),  # a disc
    ]
    images = []
    for index in range(count):
        page = Image.new("L", (canvas, canvas), 0)
        radius = rng.uniform(0.2, 0.45) * canvas
        x, y = (canvas / 2 + rng.uniform(-0.1, 0.1, 2) * canvas).tolist()
        drawings[index % len(drawings)](ImageDraw.Draw(page), x, y, radius, int(rng.integers(1, 4)))
        images.append(np.asarray(page, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(images))


def _star(x: float, y: float, radius: float, points: int = 5) -> list[tuple[float, float]]:
    angles = [math.pi / 2 + i * math.pi / points for i in range(2 * points)]
    return [
        (
            x + (radius if i % 2 == 0 else radius / 2.5) * math.cos(a),
            y - (radius if i % 2 == 0 else radius / 2.5) * math.sin(a),
        )
        for i, a in enumerate(angles)
    ]
