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
        # Over every seed trained, also when only the best seed's model was stored (transfer.keep_models).
        score = stored[0].info.get("strategy_validation_accuracy", mean(m.info["validation_accuracy"] for m in stored))
        if best_score is None or score > best_score:
            best_strategy, best_score, best_models = stored[0].info["strategy"], score, stored
    if best_models is None:
        raise ValueError("no trained strategy to choose a candidate from")
    return best_strategy, max(best_models, key=lambda m: m.info["validation_accuracy"])


def incomparable(champion: StoredModel, classes: list[str], channels: int) -> str | None:
    """Why the champion cannot be tested on a split with these classes and channels, or None.
    Only these mismatches make a champion untestable; any other failure to evaluate it is a fault."""
    champion_classes = champion.info.get("classes")
    if champion_classes is not None and list(map(str, champion_classes)) != list(map(str, classes)):
        return f"it classifies {champion_classes}, the test split has {classes}"
    if champion.config.get("num_classes", len(classes)) != len(classes):
        return f"it has {champion.config['num_classes']} outputs, the test split {len(classes)} classes"
    expected = champion.in_channels
    if expected != channels:
        return f"it takes {expected}-channel images, the test split has {channels}"
    return None
