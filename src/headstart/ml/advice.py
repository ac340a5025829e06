"""Advice before training: the transferability scores of each candidate source per block, the
candidates' rankings, the size × similarity rule, and the advice record the race completes. Its audit
after training, against measured accuracy, is headstart.ml.advice_audit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator
from threadpoolctl import threadpool_limits

from headstart.ml.config import Settings
from headstart.ml.data.images import LabelledImages
from headstart.ml.features import block_features
from headstart.ml.models.stored import StoredModel
from headstart.ml.strategies.race import cheapest_first
from headstart.ml.transferability import h_score, knn_accuracy, leep, logme, mmd, nce, proxy_a_distance

# Higher is better for each: the transferability scores, and what the candidates are ranked by.
SCORES = ("knn_accuracy", "logme", "leep", "nce", "h_score")
HEAD_SCORES = ("leep", "nce")  # read the source head's predictions: the final block only
DOMAIN_MEASURES = ("proxy_a_distance", "mmd")  # lower is more similar
QUADRANTS = ("small_similar", "small_different", "large_similar", "large_different")


class SizeSimilarityRule(Settings):
    """The cs231n rule of thumb: a small target set keeps the source's features fixed (the top
    block's if the domains are similar, an earlier block's if not); a large one fine-tunes. Its
    thresholds, and the strategy (by name in transfer.strategies) per quadrant."""

    small_below_labels_per_class: float = Field(50, gt=0)  # labels used (training + validation) per class
    similar_below_distance: float = Field(1.0, ge=0, le=2)  # proxy A-distance at the top block
    strategies: dict[Literal[QUADRANTS], str] = {
        "small_similar": "feature_svm",
        "small_different": "finetune_top",
        "large_similar": "finetune_full",
        "large_different": "finetune_full",
    }

    @model_validator(mode="after")
    def _covers_every_quadrant(self) -> SizeSimilarityRule:
        missing = [q for q in QUADRANTS if q not in self.strategies]
        if missing:
            raise ValueError(f"strategies: no strategy for {', '.join(missing)}")
        return self


@dataclass(frozen=True)
class Recommendation:
    candidate: str
    quadrant: str
    strategy: str
    freeze_blocks: int  # the first n blocks kept as the source made them
    total_blocks: int
    labels_per_class: float
    proxy_a_distance: float
    depth_score: str  # the score that chose the depth
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    candidate: str,
    labels_per_class: float,
    top_distance: float,
    block_scores: dict[int, float],
    rule: SizeSimilarityRule,
    depth_score: str = "knn_accuracy",
) -> Recommendation:
    """The strategy for the measured size and similarity, and how many blocks to freeze: all of them
    for small & similar, the block whose features score best for small & different (the shallower on
    a tie), none when the target set is large. When the best-scoring block of a different domain is
    the top one after all, the scores overrule the rule's guess: the small & similar strategy, on the
    top features, is advised, and the reason says so."""
    total = max(block_scores)
    small = labels_per_class < rule.small_below_labels_per_class
    similar = top_distance < rule.similar_below_distance
    quadrant = f"{'small' if small else 'large'}_{'similar' if similar else 'different'}"
    best_block = max(block_scores, key=lambda block: (block_scores[block], -block))
    freeze = {"small_similar": total, "small_different": best_block}.get(quadrant, 0)
    size_text = (
        f"{labels_per_class:g} labels per class {'<' if small else '≥'} {rule.small_below_labels_per_class:g} (small)"
        if small
        else f"{labels_per_class:g} labels per class ≥ {rule.small_below_labels_per_class:g} (large)"
    )
    similarity_text = (
        f"proxy A-distance at block {total} = {top_distance:.3f} {'<' if similar else '≥'} "
        f"{rule.similar_below_distance:g} ({'similar' if similar else 'different'})"
    )
    depth_text = {
        "small_similar": f"freeze all {total} blocks: a classifier on the top features",
        "small_different": f"freeze the first {best_block} of {total} blocks: {depth_score} is best at block "
        f"{best_block} ({', '.join(f'{b}: {s:.3f}' for b, s in sorted(block_scores.items()))})",
    }.get(quadrant, "freeze nothing: fine-tune every block")
    strategy = rule.strategies[quadrant]
    if quadrant == "small_different" and best_block == total:
        strategy = rule.strategies["small_similar"]
        depth_text += f", the top block: a classifier on the top features ({strategy}), as for a similar domain"
    reason = f"{size_text}; {similarity_text} → {quadrant}: {strategy}, {depth_text}"
    return Recommendation(
        candidate,
        quadrant,
        strategy,
        freeze,
        total,
        labels_per_class,
        top_distance,
        depth_score,
        reason,
    )


def rank_candidates(top_scores: pd.DataFrame, scores: tuple[str, ...] = SCORES) -> pd.DataFrame:
    """Per score, each candidate's rank (1 = the most transferable), from one row per candidate."""
    ranks = top_scores.set_index("candidate")[list(scores)].rank(ascending=False, method="min")
    return ranks.astype(int).reset_index()


def sample_images(images: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` of `images` (all of them if fewer), drawn without replacement by a seeded permutation."""
    generator = torch.Generator().manual_seed(seed)
    return images[torch.randperm(len(images), generator=generator)[:count]]


def score_candidate(
    name: str,
    stored: StoredModel,
    labelled: torch.Tensor,
    labels: np.ndarray,
    source_images: torch.Tensor,
    target_images: torch.Tensor,
    neighbours: int,
    folds: int,
    seed: int,
) -> list[dict]:
    """One row per block of the candidate's body: the transferability scores of its features for
    `labelled` images' `labels`, the domain measures between its features of `source_images` and
    `target_images`, and the seconds the candidate took (features, scores, measures)."""
    rows = []
    started = time.perf_counter()
    model = stored.build()
    features, probabilities = block_features(model, labelled)
    source_features, _ = block_features(model, source_images)
    target_features, _ = block_features(model, target_images)
    for index, block in enumerate(features):
        final = index == len(features) - 1
        domain = (source_features[index], target_features[index])
        rows.append(
            {
                "candidate": name,
                "block": index + 1,
                "final_block": final,
                "features": block.shape[1],
                "images": len(labels),
                "knn_accuracy": knn_accuracy(block, labels, neighbours, folds, seed),
                "logme": logme(block, labels),
                "leep": leep(probabilities, labels) if final else np.nan,
                "nce": nce(probabilities.argmax(axis=1), labels) if final else np.nan,
                "h_score": h_score(block, labels),
                "proxy_a_distance": proxy_a_distance(*domain, folds, seed),
                "mmd": mmd(*domain),
            }
        )
    seconds = time.perf_counter() - started
    for row in rows:
        row["candidate_seconds"] = seconds
    return rows


def score_candidates(
    candidates: Mapping[str, StoredModel],
    source: LabelledImages,
    target_pool: LabelledImages,
    train: LabelledImages,
    validation: LabelledImages,
    neighbours: int,
    folds: int,
    domain_images: int,
    seed: int,
) -> pd.DataFrame:
    """One row per candidate and block (`score_candidate`): scores on every labelled target image (the
    training and validation labels), domain measures on `domain_images` source and as many unlabelled
    target-pool images. LEEP and NCE read the source head: final block only.

    One BLAS thread: on matrices this small (hundreds × ≤ 128) threads cost more than they save,
    and on a busy machine an SVD took 2.6 s with two threads against 0.02 s with one."""
    labelled = torch.cat([train.images, validation.images])
    labels = torch.cat([train.primary_labels, validation.primary_labels]).numpy()
    source_images = sample_images(source.images, domain_images, seed)
    target_images = sample_images(target_pool.images, domain_images, seed)
    rows = []
    for name, stored in candidates.items():
        with threadpool_limits(limits=1, user_api="blas"):
            rows += score_candidate(
                name, stored, labelled, labels, source_images, target_images, neighbours, folds, seed
            )
    return pd.DataFrame(rows)


def choose_advice(
    scores: pd.DataFrame, labels_per_class: float, rule: SizeSimilarityRule, ranking_score: str
) -> tuple[pd.DataFrame, Recommendation]:
    """The candidates ranked by each score at their final block (sorted by `ranking_score`; ties by the
    mean rank over all scores, then conf order), and the recommendation for the first: its size ×
    similarity quadrant and depth from its per-block scores."""
    top = scores[scores["final_block"]].reset_index(drop=True)
    ranking = rank_candidates(top)
    # ties on the ranking score: the better mean rank over every score, then the order of advise.candidates
    mean_rank = ranking[list(SCORES)].mean(axis=1)
    ranking = ranking.assign(mean_rank=mean_rank).sort_values([ranking_score, "mean_rank"], kind="stable")
    ranking = ranking.drop(columns="mean_rank").reset_index(drop=True)
    chosen = ranking["candidate"].iloc[0]
    per_block = scores[scores["candidate"] == chosen].set_index("block")
    top_distance = float(per_block["proxy_a_distance"].iloc[-1])
    recommendation = recommend(
        chosen, labels_per_class, top_distance, per_block[ranking_score].to_dict(), rule, ranking_score
    )
    return ranking, recommendation


def first_by_score(ranking: pd.DataFrame, scores: tuple[str, ...] = SCORES) -> dict[str, str]:
    """Per score, the candidate it ranks first (a tie: the earlier in `ranking`'s order)."""
    return {score: ranking.loc[ranking[score].idxmin(), "candidate"] for score in scores if score in ranking}


def where_it_starts(params, default_source: str, total_blocks: int) -> tuple[str | None, int | None]:
    """A strategy's (source, freeze depth in blocks): its `source` or the default one, and its first frozen
    blocks once it is trained (LP-FT: none, its probe's frozen body is fine-tuned after); (None, None) when
    it transfers nothing (a baseline: from scratch or on the raw pixels)."""
    strategy = params.strategy
    if "source" not in strategy.models or (params.copy_blocks == 0 and not params.copy_modules):
        return None, None
    return params.source or default_source, strategy.frozen_at_end(params.spec, total_blocks)


def strategy_variant(
    strategies: Mapping, base: str, source: str, depth: int | None, default_source: str, total_blocks: int
) -> str | None:
    """The first strategy in `strategies` (name → params) that is `base` but for its `source` and
    `freeze_blocks`, and starts from `source` at `depth` (None: at `base`'s own depth); None if none is."""
    if base not in strategies:
        return None
    same = {"source", "freeze_blocks"}
    wanted = strategies[base].model_dump(exclude=same)
    if depth is None:
        depth = where_it_starts(strategies[base], default_source, total_blocks)[1]
    for name, params in strategies.items():
        start = where_it_starts(params, default_source, total_blocks)
        if params.model_dump(exclude=same) == wanted and start == (source, depth):
            return name
    return None


def advice_record(
    recommendation: Recommendation,
    ranking: pd.DataFrame,
    ranking_score: str,
    scores: pd.DataFrame,
    candidate_info: Mapping[str, Mapping],
) -> dict:
    """The advice as JSON: the recommendation, the ranking, the seconds the scores took (each candidate's
    once) and, per candidate (from its stored info), the epochs and seconds its pretraining took."""
    return {
        **recommendation.to_dict(),
        "ranking_score": ranking_score,
        "ranking": list(ranking["candidate"]),
        "first_by_score": first_by_score(ranking),
        "advice_seconds": float(scores.groupby("candidate")["candidate_seconds"].first().sum()),
        "candidates": len(ranking),
        "candidate_epochs_trained": {
            name: info.get("summary", {}).get("epochs_trained", 0) for name, info in candidate_info.items()
        },
        # when the candidate was trained (once; later runs reuse it), apart from the advice's own time
        "candidate_train_seconds": {name: info.get("train_seconds") for name, info in candidate_info.items()},
    }


def raced_advice(
    prior: Mapping,
    prior_strategy: str,
    chosen: str,
    race: pd.DataFrame,
    rungs: list[dict],
    params,
    seconds: float,
    score_picks: Mapping[str, str | None],
    estimate: Mapping,
    confidence: float = 0.95,
) -> dict:
    """The advice as JSON: the raced strategy with its source and depth (None for both: transfer will not
    pay, a baseline won), the prior's (its raced strategy, source and depth), the race (per candidate, and
    its rungs), its cost (images through a network; seconds, the transferability scores' included; the
    estimate made before it, beside the comparison's whole grid, per strategy too), and
    what each transferability score alone would have had a user train (`score_picks`). `inseparable`: the
    strategies the race could not separate from the pick (the race table's `inseparable`, at `confidence`),
    cheapest first by the race's price: the advice's own statement of how sure it is."""
    row = race.set_index("strategy").loc[chosen]
    return {
        **prior,
        "strategy": chosen,
        "candidate": None if pd.isna(row["source"]) else row["source"],
        "freeze_blocks": None if pd.isna(row["freeze_blocks"]) else int(row["freeze_blocks"]),
        "transfers": not pd.isna(row["source"]),
        "prior_strategy": prior_strategy,
        "prior_candidate": prior["candidate"],
        "prior_freeze_blocks": prior["freeze_blocks"],
        "score_picks": dict(score_picks),
        "inseparable": cheapest_first(race, estimate.get("race_estimated_seconds_by_strategy", {})),
        "inseparable_confidence": confidence,
        "race": {
            "seeds": list(params.seeds),
            "budget_share": params.budget_share,
            "eta": params.eta,
            "first_rung_share": params.first_rung_share,
            "settings": params.settings,
            "settled_epochs": params.settled_epochs,
            "candidates": race.to_dict(orient="records"),
            "rungs": rungs,
        },
        "race_images_seen": float(race["images_seen"].sum()),
        "race_seconds": seconds,
        **estimate,  # before the race: its seconds, the comparison grid's, the share
        "race_share_of_grid_estimate": seconds / estimate["grid_estimated_seconds"],
        "advice_seconds": prior["advice_seconds"] + seconds,
    }
