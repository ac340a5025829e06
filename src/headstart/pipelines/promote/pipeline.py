from kedro.pipeline import Pipeline

from headstart.pipelines.promote.nodes import choose_champion
from headstart.pipelines.transfer.pipeline import STRATEGIES, node_reading_strategies


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node_reading_strategies(
                choose_champion,
                ["target_test", "current_champion", *(f"{s}.target_models" for s in STRATEGIES)],
                ["champion_model", "promotion_report"],
                "choose_champion",
            )
        ]
    )
