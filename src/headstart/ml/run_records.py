"""MLflow child-run records as plain dicts: run_name, params, history (one dict per epoch), metrics and
tags. The tracking hook logs the lists that nodes return (`metadata: {mlflow: child_runs}`); the library
only builds them and never calls MLflow."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sklearn.metrics import confusion_matrix

from headstart.ml.calibration import calibration_record
from headstart.ml.metrics import CALIBRATION_METRICS, evaluation_record, prefix_test_metrics
from headstart.ml.models.stored import StoredModel
from headstart.ml.plots import plot_confusion_matrix
from headstart.ml.strategies import TUNED_SETTINGS, TunedStrategy
from headstart.ml.training import measured_from_logits, predict_logits, resolve_device

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


def grid_images(tuning: Mapping) -> int:
    """Images a strategy's whole tuning grid pushed through a network, every seed and cut candidate
    included, plus those through its cached frozen prefix (a strategy evaluation's `tuning`)."""
    return int(tuning.get("grid_images_seen") or 0) + int(tuning.get("prefix_images") or 0)


def strategy_evaluation(
    strategy: str,
    trained_models: Mapping[str, StoredModel],
    kept: set[str],
    images,
    labels,
    classes: list[str],
    device: str,
    dataset: str | None = None,
) -> tuple[dict, list[dict]]:
    """A strategy's test metrics per seed (with its tuning's cost), and one child run per seed: params,
    curves, test metrics, confusion matrix, transfer report, and a reference to its stored model if kept
    (the catalog file is the one copy). With the model's temperature (headstart.ml.prediction's
    `calibrate_models`; 1 if none), calibration and selective prediction on test: ECE and NLL before and
    after temperature scaling, AURC, and the per-seed lists the comparison pools (reliability bins,
    accuracy at each coverage)."""
    first = next(iter(trained_models.values())).info
    evaluation = {
        "strategy": strategy,
        "classes": classes,
        "seeds": [],
        "tuning": {key: first.get(key) for key in ("rungs", "grid_seconds", "grid_images_seen", "prefix_images")},
    }
    runs = []
    for name, stored in trained_models.items():
        info = stored.info
        model = stored.build().to(resolve_device(device))
        logits = predict_logits(model, images)  # one pass over test for the metrics and the calibration
        measured = measured_from_logits(logits, labels)
        calibration = calibration_record(logits, labels, info.get("temperature", 1.0))
        matrix = confusion_matrix(labels.numpy(), measured["predictions"].numpy(), labels=range(len(classes)))
        report = info["transfer_report"]
        metrics = {
            **evaluation_record(measured, report["trainable_parameters"], info["train_seconds"]),
            "frozen_parameters": report["frozen_parameters"],
            "validation_accuracy": info["validation_accuracy"],
            "images_seen": info.get("images_seen", 0),
            **{setting: info[setting] for setting in TUNED_SETTINGS if setting in info},
        }
        scalars = {metric: calibration[metric] for metric in ("temperature", *CALIBRATION_METRICS)}
        evaluation["seeds"].append(
            {
                "seed": info["seed"],
                **metrics,
                **scalars,
                "tuned": info["tuned"],
                "uses": info.get("uses", ""),
                "confusion_matrix": matrix.tolist(),
                "selective_accuracy": calibration["selective_accuracy"],
                "reliability": calibration["reliability"],
            }
        )
        runs.append(
            {
                "run_name": f"{strategy} seed {info['seed']}",
                "params": {
                    "strategy": strategy,
                    "seed": info["seed"],
                    "tuned": info["tuned"],
                    **info["strategy_params"],
                },
                "history": info["history"],
                "metrics": {
                    **prefix_test_metrics(metrics),
                    "temperature": calibration["temperature"],  # fitted on validation
                    **{f"test_{metric}": calibration[metric] for metric in CALIBRATION_METRICS},
                },
                "tags": {"strategy": strategy, "seed": str(info["seed"])},
                "model": {"dataset": dataset or f"{strategy}.target_models", "name": name} if name in kept else None,
                "training_label": info.get("training_label"),  # the live run its curves went to, if any
                "artifacts": {
                    "confusion_matrix.png": plot_confusion_matrix(matrix, classes, f"{strategy}, seed {info['seed']}"),
                    "transfer_report.json": report,
                },
            }
        )
    return evaluation, runs


def tuned_models(
    tuned: TunedStrategy,
    strategy: str,
    strategy_params: Mapping,
    uses: str,
    classes: list[str],
    image_size: int,
    label_of: Callable[[dict, int], str],
    prefix_images: int,
) -> dict[str, StoredModel]:
    """The kept candidate's model per seed, with what its child run and the comparison read back:
    its setting, curves, transfer report, cost (the whole grid's too) and validation scores."""
    strategy_validation_accuracy = sum(r.validation_accuracy for r in tuned.results.values()) / len(tuned.results)
    return {
        f"seed_{seed}": StoredModel.from_module(
            result.model,
            result.config,
            {
                "strategy": strategy,
                "seed": seed,
                **tuned.setting,
                "tuned": tuned.setting_text(),
                "strategy_params": dict(strategy_params),
                "classes": classes,
                "image_size": image_size,
                "history": result.history,
                "transfer_report": result.report.to_dict(),
                "train_seconds": result.train_seconds,
                "images_seen": result.images_seen,
                "uses": uses,
                "validation_accuracy": result.validation_accuracy,
                "validation_loss": result.validation_loss,
                "strategy_validation_accuracy": strategy_validation_accuracy,  # over all seeds, kept or not
                "rungs": tuned.rungs,  # successive halving's cuts of the grid, on validation
                "grid_seconds": tuned.grid_seconds,  # the whole grid's training, cut candidates' included
                "grid_images_seen": tuned.grid_images_seen,
                "prefix_images": prefix_images,  # through frozen blocks, once (headstart.ml.feature_cache)
                "training_label": label_of(tuned.setting, seed),
            },
        )
        for seed, result in tuned.results.items()
    }


def learning_curve_run(
    strategy: str,
    budget,
    described: Mapping,
    kept: TunedStrategy,
    metrics: Mapping[str, float],
    strategy_params: Mapping,
) -> dict:
    """One strategy at one point of the learning curve (a budget and seed): its kept candidate's curves
    and test metrics, with the labels it used."""
    seed = described["seed"]
    return {
        "run_name": f"learning_curve {strategy} k={budget} seed {seed}",
        "params": {
            "study": "learning_curve",
            "strategy": strategy,
            **described,
            "tuned": kept.setting_text(),
            **strategy_params,
        },
        "history": kept.results[seed].history,
        "metrics": {
            "k": described["k"],
            "labels_used": described["labels_used"],
            **prefix_test_metrics(dict(metrics)),
        },
        "tags": {"study": "learning_curve", "strategy": strategy},
    }
