import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.multitask import masked_losses, outputs_per_task
from headstart.multitask_params import MultitaskParams
from headstart.params import RuntimeParams
from headstart.pipelines.multitask.nodes import (
    build_multitask_data,
    compare_multitask_methods,
    estimate_multitask_cost,
    evaluate_multitask_methods,
    train_multitask_methods,
)
from tests.ml.test_multitask import two_task_data


def test_a_trunk_from_the_source_model_starts_from_its_body(tmp_path):
    images, labels = two_task_data(24)
    data = LabelledImages(images=images, labels=labels, classes={"left": ["a", "b", "c"], "right": ["a", "b", "c"]})
    source_config = {"name": "small_cnn", "in_channels": 1, "num_classes": 10, "widths": [4, 8]}
    torch.manual_seed(3)
    source = StoredModel.from_module(build_model(source_config), source_config)
    params = MultitaskParams.model_validate(
        {
            "data": {"kind": "multi_digits"},
            "trunk": {"init": "source"},
            "methods": {"single": {"sharing": "single_task"}, "soft": {"sharing": "soft", "penalty": 0.1}},
            "seeds": [0],
            "training": {"epochs": 1, "body_lr": 1e-12, "head_lr": 1e-3, "weight_decay": 0.0},
        }
    )
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), workers=1)
    models, looks = train_multitask_methods(
        data, data, data, {"source": source}, {"estimated_minutes": 0}, params, runtime
    )
    assert looks["seeds_trained"] == {"single": 1, "soft": 1}
    assert sorted(models) == ["single-seed0-left", "single-seed0-right", "soft-seed0-all"]
    trunk = models["single-seed0-left"].state["trunk.blocks.0.0.weight"]
    torch.testing.assert_close(trunk, source.state["blocks.0.0.weight"], atol=1e-6, rtol=0)  # body barely trained
    torch.testing.assert_close(
        models["soft-seed0-all"].state["networks.right.blocks.1.0.weight"],
        source.state["blocks.1.0.weight"],
        atol=1e-6,
        rtol=0,
    )


def test_multi_label_targets_train_a_sigmoid_per_label_with_missing_labels_masked(tmp_path):
    """digit_presence: one yes/no label per digit class on the pairs; each a one-logit head trained by
    binary cross-entropy; a hidden label is left out; the comparison measures every label."""
    digits, digit_labels = two_task_data(60, hidden_fraction=0.0)
    pool = LabelledImages(images=digits, labels={"digit": digit_labels["left"]}, classes={"digit": ["a", "b", "c"]})
    params = MultitaskParams.model_validate(
        {
            "data": {"kind": "digit_presence", "train_pairs": 40, "validation_pairs": 20, "test_pairs": 20},
            "missing_labels": {"task": "has_b", "fraction": 0.5},
            "trunk": {"architecture": {"name": "small_cnn", "widths": [4, 8]}},
            "methods": {"single": {"sharing": "single_task"}, "hard": {"sharing": "hard"}},
            "seeds": [0, 1],
            "training": {"epochs": 2, "batch_size": 8},
        }
    )
    train, validation, test = build_multitask_data(
        pool, pool, pool, pool, pool, params, None
    )  # ingest: read by a manifest only
    assert train.classes == {"has_a": ["no", "yes"], "has_b": ["no", "yes"], "has_c": ["no", "yes"]}
    assert int((train.labels["has_b"] < 0).sum()) == 20 and int((train.labels["has_a"] < 0).sum()) == 0
    left_or_right = train.labels["has_a"].bool()
    assert left_or_right.any() and not left_or_right.all()
    source = {
        "source": StoredModel.from_module(build_model({"name": "small_cnn", "widths": [4, 8]}), {"name": "small_cnn"})
    }
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), workers=1)
    cost_table, cost = estimate_multitask_cost(train, validation, source, params, runtime)
    assert list(cost_table["strategy"]) == ["single", "hard"] and cost["estimated_trainings"] == 2 * 3 + 2 * 1
    models, looks = train_multitask_methods(train, validation, test, source, cost, params, runtime)
    assert models["hard-seed0-all"].state["heads.has_a.weight"].shape[0] == 1  # one logit: a sigmoid
    results, _ = evaluate_multitask_methods(models, test, RuntimeParams(progress=False))
    assert sorted(set(results["task"])) == ["has_a", "has_b", "has_c"]
    assert results["accuracy"].between(0, 1).all() and results["nll"].gt(0).all()
    comparison, markdown, _, _ = compare_multitask_methods(results, models, looks, params, train, validation, test)
    assert set(comparison["method"]) == {"single", "hard"} and "has_c_accuracy" in comparison
    assert comparison.set_index("method").loc["hard", "verdict"] == looks["decisions"]["hard"]["verdict"]


def test_binary_cross_entropy_of_a_yes_no_label_averages_over_its_labelled_entries():
    logits = {"yes_no": torch.tensor([[2.0], [-1.0], [5.0]]), "digit": torch.zeros(3, 3)}
    targets = {"yes_no": torch.tensor([1, 0, -1]), "digit": torch.tensor([0, -1, -1])}
    losses = masked_losses(logits, targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(losses["yes_no"], expected)
    torch.testing.assert_close(losses["digit"], torch.tensor(3.0).log())
    assert outputs_per_task({"yes_no": ["no", "yes"], "digit": ["0", "1", "2"], "bold": ["no", "bold"]}) == {
        "yes_no": 1,
        "digit": 3,
        "bold": 2,
    }
