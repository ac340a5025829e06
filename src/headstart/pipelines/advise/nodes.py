"""Thin nodes over headstart.ml.transferability and headstart.ml.advice: candidate sources, their
scores per block, the recommendation. Nothing here trains on the target labels."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from headstart.ml.advice import DOMAIN_MEASURES, SCORES, rank_candidates, recommend
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import labels_used_per_class
from headstart.ml.features import block_features
from headstart.ml.models import build_model
from headstart.ml.models.loading import load_source_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.pretraining import source_fingerprint, train_source_model
from headstart.ml.transferability import h_score, knn_accuracy, leep, logme, mmd, nce, proxy_a_distance
from headstart.params import AdviseParams, PretrainParams, RuntimeParams

logger = logging.getLogger(__name__)


def prepare_source_candidates(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    catalogued_source_candidates: dict[str, StoredModel] | None,
    catalogued_source_model: dict[str, StoredModel] | None,
    advise: AdviseParams,
    pretrain: PretrainParams,
    runtime: RuntimeParams,
) -> tuple[dict[str, StoredModel], list[dict]]:
    """Each candidate source model, made by pretrain's own code, and its training as an MLflow child run.
    A catalogued candidate or source model of the same fingerprint (data, parameters, task) is reused,
    so only the first `advise` trains, and the candidate with no changes is the pretrained source model."""
    catalogued = {
        model.info["fingerprint"]: model
        for models in (catalogued_source_model or {}, catalogued_source_candidates or {})
        for model in models.values()
        if model.info.get("fingerprint")
    }
    candidates, runs = {}, []
    channels = int(source_train.images.shape[1])
    for name, candidate in advise.candidates.items():
        params = candidate.pretrain_params(pretrain)
        task = candidate.task or source_train.primary_task
        if task not in source_train.labels:
            raise ValueError(
                f"advise.candidates.{name}.task: the source has no task '{task}' ({list(source_train.labels)})"
            )
        if candidate.init == "pretrained" and pretrain.init != "train":
            config, model = load_source_model(
                pretrain.init, pretrain.origin, lambda classes: pretrain.architecture.to_config(channels, classes)
            )
            info = {"init": pretrain.init, "origin": pretrain.origin, "candidate": name, "task": task}
            candidates[name] = StoredModel.from_module(model, config, {**info, "summary": {"epochs_trained": 0}})
            continue
        if candidate.init == "random":
            config = params.architecture.to_config(int(source_train.images.shape[1]), len(source_train.classes[task]))
            torch.manual_seed(params.seed)
            info = {"init": "random", "candidate": name, "task": task, "summary": {"epochs_trained": 0}}
            candidates[name] = StoredModel.from_module(build_model(config), config, info)
            continue
        recipe = params.recipe(runtime)
        made_from = source_fingerprint(recipe.settings, source_train, source_validation, task)
        if made_from in catalogued and not pretrain.retrain:
            logger.info("Candidate %s: reusing the catalogued model of the same data, task and parameters", name)
            stored = catalogued[made_from]
        else:
            logger.info("Candidate %s: training on the source task %s", name, task)
            started = time.perf_counter()
            stored, _, run = train_source_model(
                source_train, source_validation, recipe, task, run_name=f"candidate source {name}"
            )
            stored.info["train_seconds"] = time.perf_counter() - started
            runs.append({**run, "tags": {"stage": "advise", "candidate": name}})
        candidates[name] = StoredModel(stored.config, stored.state, {**stored.info, "candidate": name, "task": task})
    return candidates, runs


def _sample(images: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return images[torch.randperm(len(images), generator=generator)[:count]]


def score_candidates(
    source_candidates: dict[str, StoredModel],
    source_train: LabelledImages,
    target_train_pool: LabelledImages,
    target_train: LabelledImages,
    target_validation: LabelledImages,
    advise: AdviseParams,
) -> pd.DataFrame:
    """One row per candidate and block: the transferability scores on the labelled target images
    (training + validation labels, all the labels a user has), the domain measures between source and
    unlabelled target images, and the seconds it took. LEEP and NCE read the source head: final block only."""
    labelled = torch.cat([target_train.images, target_validation.images])
    labels = torch.cat([target_train.primary_labels, target_validation.primary_labels]).numpy()
    source_images = _sample(source_train.images, advise.domain_images, advise.seed)
    target_images = _sample(target_train_pool.images, advise.domain_images, advise.seed)
    rows = []
    for name, stored in source_candidates.items():
        with threadpool_limits(limits=1, user_api="blas"):
            rows += _score_candidate(name, stored, labelled, labels, source_images, target_images, advise)
    return pd.DataFrame(rows)


def _score_candidate(
    name: str,
    stored: StoredModel,
    labelled: torch.Tensor,
    labels: np.ndarray,
    source_images: torch.Tensor,
    target_images: torch.Tensor,
    advise: AdviseParams,
) -> list[dict]:
    """One BLAS thread: on matrices this small (hundreds × ≤ 128) threads cost more than they save,
    and on a busy machine an SVD took 2.6 s with two threads against 0.02 s with one."""
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
                "knn_accuracy": knn_accuracy(block, labels, advise.neighbours, advise.folds, advise.seed),
                "logme": logme(block, labels),
                "leep": leep(probabilities, labels) if final else np.nan,
                "nce": nce(probabilities.argmax(axis=1), labels) if final else np.nan,
                "h_score": h_score(block, labels),
                "proxy_a_distance": proxy_a_distance(*domain, advise.folds, advise.seed),
                "mmd": mmd(*domain),
            }
        )
    seconds = time.perf_counter() - started
    for row in rows:
        row["candidate_seconds"] = seconds
    return rows


def advise_strategy(
    transferability_scores: pd.DataFrame,
    source_candidates: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    advise: AdviseParams,
) -> tuple[dict, str, pd.DataFrame]:
    """The recommendation (strategy, freeze depth, the numbers behind them), the report, and the
    candidates' ranking by each score; the recommendation and ranking are also printed."""
    scores = transferability_scores
    top = scores[scores["final_block"]].reset_index(drop=True)
    ranking = rank_candidates(top).sort_values(advise.ranking_score).reset_index(drop=True)
    chosen = ranking["candidate"].iloc[0]
    per_block = scores[scores["candidate"] == chosen].set_index("block")
    labels_per_class = labels_used_per_class(target_train, target_validation)
    top_distance = float(per_block["proxy_a_distance"].iloc[-1])
    recommendation = recommend(
        chosen,
        labels_per_class,
        top_distance,
        per_block[advise.ranking_score].to_dict(),
        advise.rule,
        advise.ranking_score,
    )
    seconds = float(scores.groupby("candidate")["candidate_seconds"].first().sum())
    ranking_text = ", ".join(f"{i + 1}. {name}" for i, name in enumerate(ranking["candidate"]))
    logger.info("Candidate sources ranked by %s: %s", advise.ranking_score, ranking_text)
    for score in SCORES:
        order = ranking.sort_values(score)["candidate"]
        logger.info("  by %s: %s", score, " > ".join(order))
    logger.info(
        "Advice (%.1f s for %d candidates, no training on the target): source %s, %s, freeze %d of %d blocks. Why: %s",
        seconds,
        len(top),
        chosen,
        recommendation.strategy,
        recommendation.freeze_blocks,
        recommendation.total_blocks,
        recommendation.reason,
    )
    advice = {
        **recommendation.to_dict(),
        "ranking_score": advise.ranking_score,
        "ranking": list(ranking["candidate"]),
        "advice_seconds": seconds,
        "candidates": len(top),
        "candidate_epochs_trained": {
            name: stored.info.get("summary", {}).get("epochs_trained", 0) for name, stored in source_candidates.items()
        },
        # when the candidate was trained (once; later runs reuse it), apart from the advice's own time
        "candidate_train_seconds": {
            name: stored.info.get("train_seconds") for name, stored in source_candidates.items()
        },
    }
    columns = ["candidate", "block", "features", *SCORES, *DOMAIN_MEASURES]
    markdown = "\n".join(
        [
            "# Advice before training: transferability, domain similarity and the size × similarity rule",
            "",
            f"**Recommendation**: source `{chosen}` (first by {advise.ranking_score}), strategy "
            f"`{recommendation.strategy}`, freeze the first {recommendation.freeze_blocks} of "
            f"{recommendation.total_blocks} blocks.",
            "",
            f"Why: {recommendation.reason}.",
            "",
            "## Protocol",
            "",
            f"- Scores on the {int(top['images'].iloc[0])} labelled target images (training + validation labels: "
            f"{labels_per_class:g} per class); features of each block global-average-pooled, source batch-norm "
            "statistics. Higher is better for every score; LEEP and NCE read the source head's predictions over "
            "its own classes, so they exist for the final block only (empty elsewhere).",
            f"- k-NN accuracy: {advise.neighbours}-nearest neighbours, stratified {advise.folds}-fold "
            "cross-validation (fewer folds if a class has fewer labels). LogME: You et al. 2021; LEEP: Nguyen et "
            "al. 2020; NCE: Tran et al. 2019; H-score: Bao et al. 2019.",
            f"- Domain: {advise.domain_images} source and {advise.domain_images} unlabelled target-pool images; "
            "proxy A-distance 2(1 − 2ε) of a cross-validated logistic regression (0 = indistinguishable, "
            "2 = separable); MMD² unbiased, RBF kernel, median-heuristic bandwidth. Lower is more similar.",
            f"- Time: {seconds:.1f} s for all {len(top)} candidates (features, scores, domain measures) on this "
            "machine, beside no target training at all; candidate pretraining is counted apart (reused from the "
            "catalog after the first run): "
            + ", ".join(
                f"{name} {'not timed (made by pretrain or before timing)' if s is None else f'{s:.0f} s'}"
                for name, s in advice["candidate_train_seconds"].items()
                if source_candidates[name].info.get("init") != "random"
            )
            + " when first trained.",
            "",
            f"## Ranking of the candidate sources (1 = most transferable; recommendation by {advise.ranking_score})",
            "",
            ranking.to_markdown(index=False),
            "",
            "## Scores per candidate and block",
            "",
            scores[columns].to_markdown(index=False, floatfmt=".3f"),
            "",
        ]
    )
    return advice, markdown, ranking
