"""Choices between trained models, made on validation accuracy alone: these functions are never
given test metrics, so the test split cannot sway what is promoted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from statistics import mean

from headstart.ml.models.stored import StoredModel


def choose_candidate(strategy_models: Iterable[Mapping[str, StoredModel]]) -> tuple[str, StoredModel]:
    """(strategy, model): the strategy with the best mean validation accuracy over its seeds (the
    rule that tuned it), then its seed with the best validation accuracy. Ties: the first listed."""
    best_strategy, best_score, best_models = None, None, None
    for models in strategy_models:
        stored = list(models.values())
        score = mean(m.info["validation_accuracy"] for m in stored)
        if best_score is None or score > best_score:
            best_strategy, best_score, best_models = stored[0].info["strategy"], score, stored
    if best_models is None:
        raise ValueError("no trained strategy to choose a candidate from")
    return best_strategy, max(best_models, key=lambda m: m.info["validation_accuracy"])
