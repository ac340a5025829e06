import math

import pytest
import torch

from headstart.ml.models.multitask import HardSharingModel, SoftSharingModel
from headstart.ml.multitask import (
    WEIGHTINGS,
    FixedWeighting,
    MethodRecipe,
    MultiTaskObjective,
    WeightingParams,
    evaluate_multitask,
    masked_losses,
    register_weighting,
)
from headstart.ml.multitask.weightings import Rate
from headstart.ml.racing import setting_text
from headstart.ml.training import TrainConfig, fit
from tests.ml.test_transfer import toy_data

TRUNK = {"name": "small_cnn", "in_channels": 1, "widths": [4, 8]}
TASKS = {"left": 3, "right": 3}


def two_task_data(n=60, hidden_fraction=0.3):
    images, labels = toy_data(n)
    right = labels.flip(0).clone()
    hidden = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: int(hidden_fraction * n)]
    right[hidden] = -1  # 30% of the right task's labels are missing
    return images, {"left": labels, "right": right}


def make_weighting(name):
    return WEIGHTINGS[name](list(TASKS))


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_weighting_trains_with_30_percent_of_one_task_missing_and_no_nan(name):
    torch.manual_seed(0)
    model = HardSharingModel(TRUNK, TASKS)
    images, labels = two_task_data()
    objective = MultiTaskObjective(make_weighting(name))
    result = fit(
        model,
        (images, labels),
        (images, labels),
        TrainConfig(epochs=3, batch_size=8, progress=False),
        objective=objective,
    )
    for record in result.history:
        assert all(math.isfinite(v) for v in record.values()), record
    measured = evaluate_multitask(model, images, labels)
    assert len(measured["right"]["predictions"]) == int((labels["right"] >= 0).sum())  # labelled entries only
    assert len(measured["left"]["predictions"]) == len(images)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_a_batch_without_labels_for_a_task_or_any_task_adds_nothing_and_gives_no_nan(name):
    torch.manual_seed(0)
    model = HardSharingModel(TRUNK, TASKS)
    weighting = make_weighting(name)
    objective = MultiTaskObjective(weighting)
    images = torch.rand(4, 1, 8, 8)
    one_missing = {"left": torch.tensor([0, 1, 2, 0]), "right": torch.full((4,), -1)}
    all_missing = {"left": torch.full((4,), -1), "right": torch.full((4,), -1)}
    for targets in (one_missing, all_missing):
        model.zero_grad(set_to_none=True)
        total, parts = objective.loss(model, images, targets)
        assert torch.isfinite(total) and "right" not in parts.losses
        objective.backward(model, total, parts)
        for parameter in model.heads["right"].parameters():
            assert parameter.grad is None or torch.count_nonzero(parameter.grad) == 0
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_masked_loss_averages_over_labelled_entries_only():
    logits = {"t": torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])}
    loss = masked_losses(logits, {"t": torch.tensor([0, -1, 1])})["t"]
    expected = torch.nn.functional.cross_entropy(logits["t"][[0, 2]], torch.tensor([0, 1]))
    torch.testing.assert_close(loss, expected)


def test_soft_sharing_penalty_pulls_the_task_networks_weights_together():
    images, labels = two_task_data(hidden_fraction=0.0)
    distances = {}
    for penalty in (0.0, 1.0):
        torch.manual_seed(0)
        model = SoftSharingModel(TRUNK, TASKS)
        before = model.penalty().item()
        objective = MultiTaskObjective(make_weighting("fixed"), penalty=penalty)
        config = TrainConfig(epochs=4, batch_size=8, body_lr=1e-2, head_lr=1e-2, progress=False)
        fit(model, (images, labels), (images, labels), config, objective=objective)
        distances[penalty] = model.penalty().item()
    assert distances[1.0] < 0.5 * before
    assert distances[1.0] < 0.5 * distances[0.0]


def test_gradnorm_weights_stay_positive_and_sum_to_the_number_of_tasks():
    torch.manual_seed(0)
    model = HardSharingModel(TRUNK, TASKS)
    weighting = make_weighting("gradnorm")
    images, labels = two_task_data(hidden_fraction=0.0)
    fit(
        model,
        (images, labels),
        (images, labels),
        TrainConfig(epochs=2, batch_size=8, progress=False),
        objective=MultiTaskObjective(weighting),
    )
    weights = weighting.weights()
    assert sum(weights.values()) == pytest.approx(2.0) and min(weights.values()) > 0
    assert weights["left"] != pytest.approx(1.0)  # they moved


def test_pcgrad_removes_the_conflict_between_two_task_gradients():
    model = HardSharingModel(TRUNK, TASKS)
    weighting = make_weighting("pcgrad")
    images = torch.rand(6, 1, 8, 8)
    targets = {"left": torch.tensor([0, 1, 2, 0, 1, 2]), "right": torch.tensor([2, 1, 0, 2, 1, 0])}
    outputs = model(images)
    losses = masked_losses(outputs, targets)
    shared = model.shared_parameters()
    grads = [
        torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)])
        for loss in losses.values()
    ]
    weighting.backward(model, sum(losses.values()), losses)
    combined = torch.cat([p.grad.flatten() for p in shared])
    if torch.dot(*grads) < 0:  # conflicting: the projected sum no longer opposes either task
        assert all(torch.dot(combined, g) >= -1e-6 for g in grads)
    else:
        torch.testing.assert_close(combined, grads[0] + grads[1])


def test_upgrad_updates_the_trunk_against_no_task_and_each_head_by_its_own_loss():
    torch.manual_seed(0)
    model = HardSharingModel(TRUNK, TASKS)
    images = torch.rand(6, 1, 8, 8)
    targets = {"left": torch.tensor([0, 1, 2, 0, 1, 2]), "right": torch.tensor([2, 1, 0, 2, 1, 0])}
    losses = masked_losses(model(images), targets)
    shared = model.shared_parameters()
    grads = [
        torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)])
        for loss in losses.values()
    ]
    head = list(model.heads["left"].parameters())
    head_grads = torch.autograd.grad(losses["left"], head, retain_graph=True)
    make_weighting("upgrad").backward(model, sum(losses.values()), losses)
    combined = torch.cat([p.grad.flatten() for p in shared])
    assert all(torch.dot(combined, g) >= -1e-6 for g in grads)  # in the dual cone: conflicts with no task
    assert combined.norm() > 0
    for parameter, expected in zip(head, head_grads):
        torch.testing.assert_close(parameter.grad, expected)


def test_famo_follows_its_update_rule():
    """REFERENCE.md: the backpropagated loss Σ z_t·log ℓ_t / c (c = Σ z_t/ℓ_t, detached) weighs task t's
    gradient by (z_t/ℓ_t)/Σ(z/ℓ); after the step, w takes an Adam step along softmax(w)'s gradient
    with grad_outputs δ_t = log ℓ_t(before) − log ℓ_t(after): from w = 0, Adam's first step is
    lr·sign, so the task whose loss fell more loses weight."""
    weighting = WEIGHTINGS["famo"](list(TASKS), lr=0.025, weight_decay=0.01)
    before = {"left": torch.tensor(2.0, requires_grad=True), "right": torch.tensor(0.5, requires_grad=True)}
    combined = weighting.combine(before)
    combined.backward()
    z, ell = torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.5])
    expected = (z / ell) / (z / ell).sum()
    torch.testing.assert_close(torch.stack([before["left"].grad, before["right"].grad]), expected)
    torch.testing.assert_close(combined.detach(), ((z / (z / ell).sum()) * ell.log()).sum())
    after = {"left": torch.tensor(1.0), "right": torch.tensor(0.45)}  # left fell by log 2, right by log(0.5/0.45)
    weighting.after_step(lambda: after)
    torch.testing.assert_close(weighting.famo._w.detach(), torch.tensor([-0.025, 0.025]), atol=1e-6, rtol=0)
    weights = weighting.weights()
    assert weights["left"] < 0.5 < weights["right"] and sum(weights.values()) == pytest.approx(1.0)
    incomplete = weighting.combine({"left": torch.tensor(1.0)})  # a batch without right's labels
    assert float(incomplete) == 1.0
    weighting.after_step(lambda: pytest.fail("no update without every task"))


@pytest.mark.parametrize("sharing", ["single_task", "hard"])
def test_tuning_races_each_part_on_validation_keeps_its_best_and_leaves_no_checkpoint(tmp_path, sharing):
    images, labels = two_task_data(48, hidden_fraction=0.0)
    grid = [{"lr_scale": 0.01}, {"lr_scale": 1.0}, {"lr_scale": 3.0}]
    recipe = MethodRecipe(
        sharing,
        lambda setting, tasks, seed: WEIGHTINGS["fixed"](tasks),
        lambda setting: 0.0,
        TRUNK,
        TASKS,
        {"head_depth": 1, "head_width": 8},
        (images, labels),
        (images, labels),
        lambda seed, setting: TrainConfig(
            epochs=3,
            batch_size=8,
            progress=False,
            seed=seed,
            body_lr=3e-3 * setting["lr_scale"],
            head_lr=3e-3 * setting["lr_scale"],
        ),
        grid,
        eta=3,
        checkpoint_dir=tmp_path,
        name="m",
    )
    tuned = recipe.tune([0, 1])
    parts = ["left", "right"] if sharing == "single_task" else ["all"]
    assert list(tuned.tuning) == parts
    assert sorted((n.info["part"], n.info["seed"]) for n in tuned.networks) == sorted(
        (p, s) for p in parts for s in (0, 1)
    )
    for part, tuning in tuned.tuning.items():
        (rung,) = tuning["rungs"]  # 3 candidates, η = 3: one rung at 1 epoch, then one survivor to the end
        assert rung["epochs"] == 1 and len(rung["scores"]) == 3 and len(rung["kept"]) == 1
        assert setting_text(tuning["setting"]) == rung["kept"][0]
        assert rung["scores"][rung["kept"][0]] == max(rung["scores"].values())
        assert all(len(n.info["history"]) == 3 for n in tuned.networks if n.info["part"] == part)
    assert not list(tmp_path.iterdir())  # the paused candidates' checkpoints are gone too


def test_train_method_gives_a_network_per_task_for_single_task_is_seeded_and_leaves_no_checkpoint(tmp_path):
    from headstart.ml.multitask import train_method

    images, labels = two_task_data(24)
    trunk = {"name": "small_cnn", "in_channels": 1, "widths": [4, 8]}
    config = TrainConfig(epochs=2, batch_size=8, progress=False, device="cpu")

    def train(sharing, seeds):
        return train_method(
            sharing,
            lambda tasks, seed: WEIGHTINGS["fixed"](tasks, None),
            0.0,
            trunk,
            {"left": 3, "right": 3},
            {"head_depth": 1, "head_width": 8},
            (images, labels),
            (images, labels),
            seeds,
            lambda seed: config.model_copy(update={"seed": seed}),
            checkpoint_dir=tmp_path,
            name=sharing,
        )

    single = train("single_task", [0, 1])
    assert [(n.info["seed"], n.info["part"]) for n in single] == [(0, "left"), (0, "right"), (1, "left"), (1, "right")]
    assert list(single[0].config["tasks"]) == ["left"] and len(single[0].info["history"]) == 2
    hard, again = train("hard", [0]), train("hard", [0])
    assert list(hard[0].config["tasks"]) == ["left", "right"] and hard[0].config["name"] == "hard_sharing"
    for name, tensor in hard[0].model.state_dict().items():
        assert torch.equal(tensor, again[0].model.state_dict()[name]), name
    assert list(tmp_path.iterdir()) == []  # finished trainings delete their checkpoints


def test_a_methods_networks_are_stored_by_method_seed_and_part_with_the_methods_parameters():
    from headstart.ml.multitask import TrainedNetwork, stored_networks

    config = {"name": "hard_sharing", "trunk": TRUNK, "tasks": TASKS, "head_depth": 1, "head_width": 8}
    torch.manual_seed(0)
    model = HardSharingModel(TRUNK, TASKS, head_width=8)
    networks = [TrainedNetwork(config, model, {"seed": s, "part": "all", "train_seconds": 1.0}) for s in (0, 1)]
    stored = stored_networks("hard", {"sharing": "hard"}, networks)
    assert list(stored) == ["hard-seed0-all", "hard-seed1-all"]
    assert stored["hard-seed1-all"].info == {
        "method": "hard",
        "method_params": {"sharing": "hard"},
        "seed": 1,
        "part": "all",
        "train_seconds": 1.0,
    }
    assert torch.equal(stored["hard-seed0-all"].state["trunk.blocks.0.0.weight"], model.trunk.blocks[0][0].weight)


def test_single_task_histories_merge_per_epoch_with_the_task_as_suffix():
    from headstart.ml.models.stored import StoredModel
    from headstart.ml.multitask import merged_history

    def part(name, records):
        return StoredModel({}, {}, {"part": name, "history": records})

    left = part("left", [{"epoch": 1, "validation_accuracy": 0.5}, {"epoch": 2, "validation_accuracy_left": 0.6}])
    right = part("right", [{"epoch": 2, "validation_accuracy": 0.7}, {"epoch": 1, "validation_accuracy": 0.4}])
    assert merged_history([left, right]) == [
        {"epoch": 1, "validation_accuracy_left": 0.5, "validation_accuracy_right": 0.4},
        {"epoch": 2, "validation_accuracy_left": 0.6, "validation_accuracy_right": 0.7},
    ]
    shared = part("all", [{"epoch": 1, "validation_accuracy": 0.5}])
    assert merged_history([shared]) == [{"epoch": 1, "validation_accuracy": 0.5}]


def test_evaluate_methods_gives_a_row_per_task_and_one_run_per_method_and_seed_with_the_summed_cost():
    from headstart.ml.data.images import LabelledImages
    from headstart.ml.models.stored import StoredModel
    from headstart.ml.multitask import evaluate_methods

    images, labels = two_task_data(30)
    test = LabelledImages(images, labels, {"left": ["a", "b", "c"], "right": ["a", "b", "c"]})
    models = {}
    for task in TASKS:
        config = {"name": "hard_sharing", "trunk": TRUNK, "tasks": {task: 3}, "head_depth": 1, "head_width": 8}
        torch.manual_seed(0)
        model = HardSharingModel(TRUNK, {task: 3}, head_width=8)
        info = {
            "method": "single",
            "seed": 0,
            "part": task,
            "method_params": {"sharing": "single_task"},
            "train_seconds": 2.0,
            "history": [{"epoch": 1, "validation_accuracy": 0.5}],
        }
        models[f"single-seed0-{task}"] = StoredModel.from_module(model, config, info)
    rows, runs = evaluate_methods(models, test, "cpu")
    assert list(rows["task"]) == ["left", "right"] and set(rows["method"]) == {"single"}
    assert list(rows.columns[:6]) == ["method", "seed", "task", "accuracy", "macro_f1", "nll"]
    one_network = sum(p.numel() for p in models["single-seed0-left"].build().parameters())
    assert (rows["parameters"] == 2 * one_network).all() and (rows["train_seconds"] == 4.0).all()
    assert (rows["inference_seconds"] > 0).all()
    (run,) = runs
    assert run["run_name"] == "multitask single seed 0" and run["params"]["sharing"] == "single_task"
    assert run["metrics"]["right.test_accuracy"] == rows.loc[1, "accuracy"]
    assert run["history"] == [{"epoch": 1, "validation_accuracy_left": 0.5, "validation_accuracy_right": 0.5}]


def test_a_weighting_is_built_by_its_registered_name_with_the_knobs_its_constructor_declares():
    """WeightingParams builds the weighting its `kind` names in WEIGHTINGS, with that weighting's own knobs
    (defaults from its constructor, the one declaration); an unknown name is a one-line error naming the
    weightings there are, never another weighting (an unknown kind once fell through to PCGrad)."""
    for kind, weighting in WEIGHTINGS.items():
        assert type(WeightingParams(kind=kind).build(["left", "right"], 3)) is weighting, kind
    assert WeightingParams(kind="famo").knobs == {"lr": 0.025, "weight_decay": 1e-3}  # FAMO's own defaults
    assert WeightingParams(kind="uncertainty").knobs == {"lr": 1e-2}
    tuned = WeightingParams(kind="gradnorm").build(["left", "right"], 0, {"lr_scale": 3.0, "alpha": 0.5})
    assert (tuned.alpha, tuned.lr) == (0.5, 1e-2)  # a candidate's own knob overrides conf's; lr_scale is not one
    assert [kind for kind, w in WEIGHTINGS.items() if w.needs_shared_parameters] == ["gradnorm", "pcgrad", "upgrad"]
    with pytest.raises(ValueError, match="weighting famo takes lr, weight_decay; alpha"):
        WeightingParams(kind="famo", alpha=1.0)
    with pytest.raises(ValueError, match="weighting gradnorm takes alpha, lr; alpha: Input should be greater than 0"):
        WeightingParams(kind="gradnorm", alpha=-1.0)
    with pytest.raises(ValueError, match="unknown loss weighting 'half'; the weightings are famo, fixed, gradnorm,"):
        WEIGHTINGS["half"]
    with pytest.raises(ValueError, match="unknown loss weighting 'half'"):
        WeightingParams(kind="half")


def test_a_weighting_added_with_the_decorator_is_built_as_itself():
    @register_weighting("half")
    class HalfWeights(FixedWeighting):
        def __init__(self, tasks: list[str], share: Rate = 0.5) -> None:
            super().__init__(tasks, {task: share for task in tasks})

    try:
        built = WeightingParams(kind="half").build(["left", "right"], 0)
        assert type(built) is HalfWeights and built.weights() == {"left": 0.5, "right": 0.5}
        assert WeightingParams(kind="half", share=0.25).build(["left"], 0).weights() == {"left": 0.25}
        with pytest.raises(ValueError, match="'half' is registered twice"):
            register_weighting("half")(HalfWeights)
    finally:
        WEIGHTINGS.pop("half")
