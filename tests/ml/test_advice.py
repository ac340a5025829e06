import pandas as pd
import pytest
import torch

from headstart.ml.advice import (
    SizeSimilarityRule,
    advice_record,
    choose_advice,
    rank_candidates,
    recommend,
    sample_images,
    strategy_variant,
    where_it_starts,
)
from headstart.params import StrategyParams

RULE = SizeSimilarityRule(
    small_below_labels_per_class=50,
    similar_below_distance=1.0,
    strategies={
        "small_similar": "feature_svm",
        "small_different": "finetune_top",
        "large_similar": "finetune_full",
        "large_different": "lp_ft",
    },
)
BLOCKS = {1: 0.7, 2: 0.9, 3: 0.8}


@pytest.mark.parametrize(
    ("labels_per_class", "distance", "quadrant", "strategy", "freeze"),
    [
        (20, 0.5, "small_similar", "feature_svm", 3),  # the top features as they are
        (20, 1.5, "small_different", "finetune_top", 2),  # the block that scores best
        (100, 0.5, "large_similar", "finetune_full", 0),
        (100, 1.5, "large_different", "lp_ft", 0),
    ],
)
def test_size_by_similarity_rule_picks_strategy_and_depth(labels_per_class, distance, quadrant, strategy, freeze):
    advice = recommend("source", labels_per_class, distance, BLOCKS, RULE)
    assert (advice.quadrant, advice.strategy, advice.freeze_blocks, advice.total_blocks) == (
        quadrant,
        strategy,
        freeze,
        3,
    )
    assert f"{labels_per_class:g} labels per class" in advice.reason and f"{distance:.3f}" in advice.reason


def test_different_domain_whose_top_block_scores_best_gets_the_classifier_on_top_features():
    advice = recommend("s", 20, 1.6, {1: 0.5, 2: 0.8, 3: 0.9}, RULE)
    assert (advice.quadrant, advice.strategy, advice.freeze_blocks) == ("small_different", "feature_svm", 3)
    assert "the top block" in advice.reason


def test_a_tie_between_blocks_freezes_the_shallower():
    assert recommend("s", 5, 1.9, {1: 0.5, 2: 0.8, 3: 0.8}, RULE).freeze_blocks == 2


def test_candidates_are_ranked_per_score_best_first():
    top = pd.DataFrame({"candidate": ["a", "b", "c"], "knn_accuracy": [0.5, 0.9, 0.7], "logme": [-1.0, -2.0, -0.5]})
    ranks = rank_candidates(top, ("knn_accuracy", "logme")).set_index("candidate")
    assert ranks["knn_accuracy"].to_dict() == {"a": 3, "b": 1, "c": 2}
    assert ranks["logme"].to_dict() == {"a": 2, "b": 3, "c": 1}


def scores_table():
    rows = []
    for candidate, knn, distance in (("near", [0.5, 0.9, 0.8], 0.4), ("far", [0.6, 0.7, 0.75], 1.5)):
        for block in (1, 2, 3):
            rows.append(
                {
                    "candidate": candidate,
                    "block": block,
                    "final_block": block == 3,
                    "knn_accuracy": knn[block - 1],
                    "logme": -block if candidate == "near" else block,
                    "leep": 1.0 if block == 3 else float("nan"),
                    "nce": 1.0 if block == 3 else float("nan"),
                    "h_score": 0.1 * block,
                    "proxy_a_distance": distance,
                    "candidate_seconds": 2.0 if candidate == "near" else 3.0,
                }
            )
    return pd.DataFrame(rows)


def test_advice_follows_the_candidate_first_by_the_ranking_score_and_its_top_block_distance():
    ranking, advice = choose_advice(scores_table(), 6.0, RULE, "knn_accuracy")
    assert list(ranking["candidate"]) == ["near", "far"]  # 0.8 against 0.75 at the final block
    assert (advice.candidate, advice.quadrant, advice.freeze_blocks) == ("near", "small_similar", 3)
    ranking, advice = choose_advice(scores_table(), 6.0, RULE, "logme")
    assert list(ranking["candidate"]) == ["far", "near"]
    assert (advice.candidate, advice.quadrant, advice.depth_score) == ("far", "small_different", "logme")
    assert advice.freeze_blocks == 3 and advice.strategy == "feature_svm"  # logme is best at the top block


def test_the_advice_record_counts_each_candidates_seconds_once_and_reads_its_pretraining():
    scores = scores_table()
    ranking, recommendation = choose_advice(scores, 6.0, RULE, "knn_accuracy")
    infos = {"near": {"summary": {"epochs_trained": 4}, "train_seconds": 9.5}, "far": {"init": "random"}}
    advice = advice_record(recommendation, ranking, "knn_accuracy", scores, infos)
    assert advice["advice_seconds"] == 5.0 and advice["candidates"] == 2 and advice["ranking"] == ["near", "far"]
    assert advice["candidate_epochs_trained"] == {"near": 4, "far": 0}
    assert advice["candidate_train_seconds"] == {"near": 9.5, "far": None}
    assert advice["candidate"] == "near" and advice["ranking_score"] == "knn_accuracy"
    assert advice["first_by_score"]["knn_accuracy"] == "near" and advice["first_by_score"]["logme"] == "far"


def variants() -> dict:
    top = {"copy_blocks": "all", "freeze_blocks": -1, "training": {"body_lr": 1e-3}}
    return {
        "scratch": StrategyParams(copy_blocks=0),
        "pixels_knn": StrategyParams(model="pixels", procedure="nearest_neighbours", copy_blocks=0),
        "feature_svm": StrategyParams(procedure="linear_classifier", freeze_blocks="all"),
        "finetune_top": StrategyParams(**top),
        "finetune_top_font": StrategyParams(**top, source="font"),
        "finetune_from_block_2": StrategyParams(**{**top, "freeze_blocks": 1}),
        "finetune_top_faster": StrategyParams(**{**top, "training": {"body_lr": 1e-2}}, source="font"),
    }


def test_a_strategy_starts_from_its_source_at_its_depth_and_a_baseline_from_none():
    strategies = variants()
    assert where_it_starts(strategies["finetune_top"], "digits", 3) == ("digits", 2)
    assert where_it_starts(strategies["finetune_top_font"], "digits", 3) == ("font", 2)
    assert where_it_starts(strategies["feature_svm"], "digits", 3) == ("digits", 3)
    lp_ft = StrategyParams(procedure="probe_then_finetune", freeze_blocks="all", probe={"epochs": 2})
    assert where_it_starts(lp_ft, "digits", 3) == ("digits", 0)  # the probe's frozen body is fine-tuned after
    assert where_it_starts(strategies["scratch"], "digits", 3) == where_it_starts(strategies["pixels_knn"], "d", 3)
    assert where_it_starts(strategies["scratch"], "digits", 3) == (None, None)


def test_a_variant_differs_from_its_strategy_only_in_source_and_depth():
    strategies = variants()
    assert strategy_variant(strategies, "finetune_top", "font", None, "digits", 3) == "finetune_top_font"
    assert strategy_variant(strategies, "finetune_top", "digits", 1, "digits", 3) == "finetune_from_block_2"
    assert strategy_variant(strategies, "finetune_top", "digits", None, "digits", 3) == "finetune_top"
    assert strategy_variant(strategies, "finetune_top", "font", 1, "digits", 3) is None  # not compared
    assert strategy_variant(strategies, "lp_ft", "digits", None, "digits", 3) is None


def test_domain_images_are_a_seeded_sample_without_replacement():
    images = torch.arange(20)
    drawn = sample_images(images, 8, 3)
    assert len(set(drawn.tolist())) == 8 and torch.equal(drawn, sample_images(images, 8, 3))
    assert len(sample_images(images, 50, 3)) == 20
