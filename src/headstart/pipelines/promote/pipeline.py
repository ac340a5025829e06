from kedro.pipeline import Pipeline

from headstart.pipelines.promote.nodes import choose_champion
from headstart.pipelines.shared import node_reading_strategies, strategy_names


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node_reading_strategies(
                choose_champion,
                ["target_test", "current_champion", *(f"{s}.target_models" for s in strategy_names())],
                ["champion_model", "promotion_report"],
                "choose_champion",
            )
        ]
    )
