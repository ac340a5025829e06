from headstart.ml.run_records import advice_audit_run, candidate_source_run, layer_sweep_run, multitask_run

RECORD_KEYS = {"run_name", "params", "history", "metrics", "tags"}


def test_a_multitask_run_names_each_tasks_test_metrics_and_adds_the_cost():
    metrics = {"left": {"accuracy": 0.5, "macro_f1": 0.4, "nll": 1.0, "predictions": [1, 2]}, "right": {}}
    metrics["right"] = {"accuracy": 0.6, "macro_f1": 0.5, "nll": 0.9}
    run = multitask_run("hard", 1, {"sharing": "hard"}, [{"epoch": 1}], metrics, {"parameters": 10})
    assert set(run) == RECORD_KEYS and run["run_name"] == "multitask hard seed 1"
    assert run["params"] == {"study": "multitask", "method": "hard", "seed": 1, "sharing": "hard"}
    assert run["metrics"] == {
        "left.test_accuracy": 0.5,
        "left.test_macro_f1": 0.4,
        "left.test_nll": 1.0,
        "right.test_accuracy": 0.6,
        "right.test_macro_f1": 0.5,
        "right.test_nll": 0.9,
        "parameters": 10,
    }
    assert run["tags"] == {"study": "multitask", "method": "hard"}


def test_a_layer_sweep_run_logs_its_point_and_training_as_params_and_test_metrics_prefixed():
    point = {"arm": "copied_frozen", "blocks": 2, "seed": 0, "labels_used": 6.0}
    metrics = {"accuracy": 0.7, "train_seconds": 1.5}
    run = layer_sweep_run(point, 3, {"epochs": 4}, [{"epoch": 1}], metrics)
    assert set(run) == RECORD_KEYS and run["run_name"] == "layer_sweep copied_frozen n=2 seed 0"
    assert run["params"] == {"study": "layer_sweep", **point, "labels_per_class": 3, "epochs": 4}
    assert run["metrics"] == {"blocks": 2, "test_accuracy": 0.7, "train_seconds": 1.5}
    assert run["tags"] == {"study": "layer_sweep", "arm": "copied_frozen"}


def test_an_advice_audit_run_prefixes_every_metric_and_is_tagged_with_its_candidate():
    point = {"candidate": "font", "measured": "probe", "strategy": "feature_svm", "seed": 1}
    run = advice_audit_run(point, "lr_scale=1", [], {"accuracy": 0.9, "validation_accuracy": 0.8})
    assert set(run) == RECORD_KEYS and run["run_name"] == "advice_audit font feature_svm seed 1"
    assert run["params"] == {"study": "advice_audit", **point, "tuned": "lr_scale=1"}
    assert run["metrics"] == {"test_accuracy": 0.9, "test_validation_accuracy": 0.8}
    assert run["tags"] == {"study": "advice_audit", "candidate": "font"}


def test_a_candidate_source_run_keeps_the_pretraining_record_and_replaces_its_tags():
    run = {"run_name": "candidate source font", "params": {"stage": "pretrain"}, "tags": {"stage": "pretrain"}}
    tagged = candidate_source_run(run, "font")
    assert tagged == {**run, "tags": {"stage": "advise", "candidate": "font"}} and run["tags"] == {"stage": "pretrain"}
