from kedro.pipeline import Node, Pipeline

from headstart.pipelines.advise.nodes import (
    advise_strategy,
    prepare_source_candidates,
    race_strategies,
    score_candidates,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the ingested data only; the candidate sources it makes are catalogued and reused. The prior
    (scores and the size × similarity rule) orders the strategies; a race on validation chooses."""
    return Pipeline(
        [
            Node(
                prepare_source_candidates,
                [
                    "source_train",
                    "source_validation",
                    "catalogued_source_candidates",
                    "catalogued_source_model",
                    "params:advise",
                    "params:pretrain",
                    "params:runtime",
                ],
                ["source_candidates", "source_candidate_runs"],
                name="prepare_source_candidates",
            ),
            Node(
                score_candidates,
                [
                    "source_candidates",
                    "source_train",
                    "target_train_pool",
                    "target_train",
                    "target_validation",
                    "params:advise",
                ],
                "transferability_scores",
                name="score_candidates",
            ),
            Node(
                advise_strategy,
                ["transferability_scores", "source_candidates", "target_train", "target_validation", "params:advise"],
                ["prior_advice", "prior_advice_markdown", "candidate_ranking"],
                name="advise_strategy",
            ),
            Node(
                race_strategies,
                [
                    "prior_advice",
                    "prior_advice_markdown",
                    "source_candidates",
                    "target_train",
                    "target_validation",
                    "source_train",
                    "target_unlabelled",
                    "params:advise",
                    "params:pretrain",
                    "params:transfer",
                    "params:runtime",
                ],
                ["advice", "advice_markdown", "strategy_race"],
                name="race_strategies",
            ),
        ]
    )
