"""MLflow child-run records as plain dicts: run_name, params, history (one dict per epoch), metrics and
tags. The tracking hook logs the lists that nodes return (`metadata: {mlflow: child_runs}`); the library
only builds them and never calls MLflow."""

from __future__ import annotations

from collections.abc import Mapping

from headstart.ml.metrics import prefix_test_metrics

MULTITASK_METRICS = ("accuracy", "macro_f1", "nll")  # per task, of each method × seed


def multitask_run(
    method: str,
    seed: int,
    method_params: Mapping,
    history: list[dict],
    task_metrics: Mapping[str, Mapping[str, float]],
    cost: Mapping[str, float],
) -> dict:
    """One method × seed of the multi-task comparison: its test metrics per task (`<task>.test_accuracy`,
    ...) and its cost (parameters, train and inference seconds)."""
    return {
        "run_name": f"multitask {method} seed {seed}",
        "params": {"study": "multitask", "method": method, "seed": seed, **method_params},
        "history": history,
        "metrics": {
            **{
                f"{task}.{name}": value
                for task, measured in task_metrics.items()
                for name, value in prefix_test_metrics({key: measured[key] for key in MULTITASK_METRICS}).items()
            },
            **cost,
        },
        "tags": {"study": "multitask", "method": method},
    }


def layer_sweep_run(
    point: Mapping, labels_per_class: int | str, training: Mapping, history: list[dict], metrics: Mapping[str, float]
) -> dict:
    """One point of the layer sweep; `point` holds its arm, blocks, seed and labels_used, `training` the
    sweep's training settings (logged as params)."""
    return {
        "run_name": f"layer_sweep {point['arm']} n={point['blocks']} seed {point['seed']}",
        "params": {"study": "layer_sweep", **point, "labels_per_class": labels_per_class, **training},
        "history": history,
        "metrics": {"blocks": point["blocks"], **prefix_test_metrics(dict(metrics))},
        "tags": {"study": "layer_sweep", "arm": point["arm"]},
    }


def advice_audit_run(point: Mapping, tuned: str, history: list[dict], metrics: Mapping[str, float]) -> dict:
    """One seed of a candidate source trained by the audit; `point` holds its candidate, measured
    (finetune or probe), strategy and seed, `tuned` the kept setting of its tuning grid."""
    return {
        "run_name": f"advice_audit {point['candidate']} {point['strategy']} seed {point['seed']}",
        "params": {"study": "advice_audit", **point, "tuned": tuned},
        "history": history,
        "metrics": {f"test_{name}": value for name, value in metrics.items()},
        "tags": {"study": "advice_audit", "candidate": point["candidate"]},
    }


def candidate_source_run(run: Mapping, candidate: str) -> dict:
    """A candidate source's pretraining run (`pretraining.train_source_model`'s record), tagged as advise's."""
    return {**run, "tags": {"stage": "advise", "candidate": candidate}}
