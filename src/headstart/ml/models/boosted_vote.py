"""TrAdaBoost's final hypothesis as a model (headstart.ml.strategies.tradaboost makes it)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class BoostedVote(nn.Module):
    """TrAdaBoost's final hypothesis as a module, stored and evaluated like every other model: linear
    learners on the frozen body's features, each voting for its predicted class with weight log(1/β_t).
    Its scores are the log vote shares (smoothed, as k-NN's are, so that NLL is finite)."""

    def __init__(self, body: dict[str, Any], learners: int, num_classes: int, **_: object) -> None:
        from headstart.ml.models import build_model

        super().__init__()
        self.body = build_model({**body, "num_classes": num_classes})
        self.body.head = nn.Identity()  # the learners are the heads
        self.body.requires_grad_(False)
        self.num_classes = num_classes
        self.learners = nn.Linear(self.body.num_features, learners * num_classes)
        self.register_buffer("vote_weights", torch.ones(learners))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.learners(self.forward_features(images).float()).view(len(images), -1, self.num_classes)
        votes = nn.functional.one_hot(scores.argmax(2), self.num_classes).float()
        weights = self.vote_weights if float(self.vote_weights.sum()) > 0 else torch.ones_like(self.vote_weights)
        shares = (votes * weights[None, :, None]).sum(1) / weights.sum()
        return torch.log(shares * (1 - 1e-3) + 1e-3 / self.num_classes)
