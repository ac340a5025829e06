"""Thin node: compare the best new model with the champion on today's test split, and decide."""

from __future__ import annotations

import logging

from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import as_array
from headstart.ml.selection import choose_candidate, incomparable
from headstart.ml.training import evaluate

logger = logging.getLogger(__name__)


def choose_champion(
    target_test: LabelledImages,
    current_champion: dict | None,
    *strategy_models: dict[str, StoredModel],
) -> tuple[dict, dict]:
    """(decision for the champion dataset, a JSON report of it). The candidate is chosen on validation
    alone (`choose_candidate`); the test split then only judges it against the champion."""
    best, candidate = choose_candidate(strategy_models)
    images, labels = target_test.primary_pairs()
    candidate_accuracy = evaluate(candidate.build(), images, labels)["accuracy"]
    report = {
        "candidate_strategy": best,
        "candidate_seed": candidate.info["seed"],
        "candidate_validation_accuracy": candidate.info["validation_accuracy"],
        "candidate_accuracy": candidate_accuracy,
    }
    if current_champion is None:
        promote, reason = True, "no champion yet"
    else:
        report["champion_version"] = current_champion["version"]
        mismatch = incomparable(current_champion["model"], target_test.primary_classes, int(images.shape[1]))
        if mismatch:
            promote, reason = False, f"the champion cannot be tested on this split ({mismatch}); kept it"
        else:  # any error here is a fault, not a decision: it stops the run and the alias stays
            champion_accuracy = evaluate(current_champion["model"].build(), images, labels)["accuracy"]
            report["champion_accuracy"] = champion_accuracy
            promote = candidate_accuracy > champion_accuracy
            reason = (
                f"candidate {candidate_accuracy:.4f} beats champion {champion_accuracy:.4f} on the same test split"
                if promote
                else f"candidate {candidate_accuracy:.4f} does not beat champion {champion_accuracy:.4f}; kept it"
            )
    report.update({"promoted": promote, "reason": reason})
    logger.info("Champion: %s", reason)
    candidate.info.setdefault("image_size", int(images.shape[-1]))  # models trained before it was recorded
    tags = {
        "strategy": best,
        "seed": candidate.info["seed"],
        "validation_accuracy": f"{candidate.info['validation_accuracy']:.4f}",
        "test_accuracy": f"{candidate_accuracy:.4f}",
    }
    example = as_array(images[0])  # the served model's input example
    return {"promote": promote, "model": candidate, "example": example, "tags": tags}, report
