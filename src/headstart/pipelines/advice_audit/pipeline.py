from kedro.pipeline import Node, Pipeline

from headstart.pipelines.advice_audit.nodes import audit_advice, measure_candidates


def create_pipeline(**kwargs) -> Pipeline:
    """Reads advise's outputs, the default run's comparison and the layer sweep: run those first."""
    return Pipeline(
        [
            Node(
                measure_candidates,
                [
                    "source_candidates",
                    "target_train",
                    "target_validation",
                    "target_test",
                    "params:transfer",
                    "params:advice_audit",
                    "params:runtime",
                ],
                ["candidate_measurements", "candidate_measurement_runs"],
                name="measure_candidates",
            ),
            Node(
                audit_advice,
                [
                    "transferability_scores",
                    "advice",
                    "candidate_measurements",
                    "transfer_comparison",
                    "layer_sweep_summary",
                    "params:advice_audit",
                    "params:transfer",
                ],
                ["advice_audit", "advice_audit_markdown", "advice_audit_plot"],
                name="audit_advice",
            ),
        ]
    )
