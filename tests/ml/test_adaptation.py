"""The conservative, feature-based, instance-based and relational objective strategies by their definitions."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from headstart.ml.strategies import STRATEGIES, StrategyConfig, TargetTask, train_strategy
from headstart.ml.strategies.coral import coral_loss
from headstart.ml.strategies.dann import dann_schedule, reverse_gradient
from headstart.ml.strategies.importance_weighting import importance_weights
from headstart.ml.strategies.l2_sp import L2SPObjective, l2_sp_penalty
from headstart.ml.strategies.lwf import LwFObjective, distillation_loss
from headstart.ml.strategies.objective import ExtraBatches, ObjectiveStrategy, RelationalObjective
from headstart.ml.strategies.rkd import rkd_loss
from headstart.ml.strategies.similarity_preserving import similarity_preserving_loss
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import tiny, toy_data


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)

    def forward_features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def test_l2_sp_gradient_pulls_the_body_toward_the_source_weights_and_the_head_toward_zero():
    torch.manual_seed(0)
    model = TwoLayer()
    anchors = {name: torch.randn_like(p) for name, p in model.body.named_parameters(prefix="body")}
    alpha, beta = 0.5, 0.1
    l2_sp_penalty(model, anchors, alpha, beta).backward()
    for name, parameter in model.body.named_parameters(prefix="body"):
        assert torch.allclose(parameter.grad, alpha * (parameter.detach() - anchors[name]))
    assert torch.allclose(model.head.weight.grad, beta * model.head.weight.detach())
    distance = sum((p - anchors[n]).pow(2).sum() for n, p in model.body.named_parameters(prefix="body"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= 0.1 * parameter.grad
    after = sum((p - anchors[n]).pow(2).sum() for n, p in model.body.named_parameters(prefix="body"))
    assert after < distance


def test_l2_sp_penalty_is_zero_at_the_source_and_skips_frozen_parameters():
    model = TwoLayer()
    anchors = {name: p.detach().clone() for name, p in model.body.named_parameters(prefix="body")}
    model.head.requires_grad_(False)
    assert float(l2_sp_penalty(model, anchors, 1.0, 1.0).detach()) == 0.0
    objective = L2SPObjective(anchors, alpha=1.0, beta=0.01)
    inputs, targets = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    loss, parts = objective.loss(model, inputs, targets)
    assert torch.isclose(loss, nn.functional.cross_entropy(model(inputs), targets))
    assert torch.equal(parts.outputs, model(inputs))


def test_lwf_extra_loss_is_zero_when_the_model_equals_the_source_and_grows_as_it_drifts():
    torch.manual_seed(0)
    source = tiny(num_classes=5).eval()
    objective = LwFObjective(copy.deepcopy(source), weight=1.0, temperature=2.0, head_lr=1e-3)
    model = copy.deepcopy(source).eval()
    images, targets = torch.rand(6, 1, 12, 12), torch.tensor([0, 1, 2, 3, 4, 0])

    def distillation_part() -> float:
        loss, parts = objective.loss(model, images, targets)
        return float((loss - nn.functional.cross_entropy(parts.outputs, targets)).detach())

    assert distillation_part() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        model.blocks[0][0].weight.add_(0.5 * torch.randn_like(model.blocks[0][0].weight))
    assert distillation_part() > 1e-4


def test_distillation_is_the_kl_divergence_of_the_softened_outputs():
    student, teacher = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0, 2.0, 0.0]])
    p = torch.softmax(teacher / 2, 1)
    q = torch.softmax(student / 2, 1)
    by_hand = float((p * (p.log() - q.log())).sum())
    assert float(distillation_loss(student, teacher, 2.0)) == pytest.approx(by_hand, rel=1e-6)


def test_gradient_reversal_flips_the_sign_and_scales_by_lambda():
    features = torch.randn(4, 3, requires_grad=True)
    weights = torch.randn(4, 3)
    (reverse_gradient(features, 0.3) * weights).sum().backward()
    assert torch.allclose(features.grad, -0.3 * weights)
    assert torch.equal(reverse_gradient(features, 0.3), features)


def test_dann_schedule_rises_from_zero_toward_one():
    assert dann_schedule(0.0) == 0.0
    assert dann_schedule(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert 0.999 < dann_schedule(1.0) < 1.0


def test_coral_loss_is_the_scaled_frobenius_distance_of_the_covariances():
    torch.manual_seed(0)
    source, target = torch.randn(50, 3), 2 * torch.randn(40, 3)
    source_cov = np.cov(source.numpy(), rowvar=False)
    target_cov = np.cov(target.numpy(), rowvar=False)
    by_hand = ((source_cov - target_cov) ** 2).sum() / (4 * 3 * 3)
    assert float(coral_loss(source, target)) == pytest.approx(by_hand, rel=1e-5)
    assert float(coral_loss(source, source + 5.0)) == pytest.approx(0.0, abs=1e-6)  # a shift leaves covariances alone


def test_importance_weights_are_higher_for_source_images_that_look_like_the_target():
    generator = np.random.default_rng(0)
    like_target = generator.normal(2.0, 0.5, size=(100, 2))
    unlike_target = generator.normal(-2.0, 0.5, size=(100, 2))
    target = generator.normal(2.0, 0.5, size=(60, 2))
    weights = importance_weights(np.concatenate([like_target, unlike_target]), target, clip=10.0)
    assert weights[:100].mean() > 5 * weights[100:].mean()
    assert float(weights.mean()) == pytest.approx(1.0, abs=1e-5)


def test_importance_weights_are_clipped():
    generator = np.random.default_rng(0)
    source = np.concatenate([generator.normal(5.0, 0.1, (5, 2)), generator.normal(-5.0, 0.1, (95, 2))])
    target = generator.normal(5.0, 0.1, (50, 2))
    clipped = importance_weights(source, target, clip=2.0)
    unclipped = importance_weights(source, target, clip=1e9)
    # the five target-like images' raw weights (about 100/50 · P(t)/P(s), far above 2) were cut to 2
    assert float(clipped[:5].mean() / clipped[5:].mean()) < float(unclipped[:5].mean() / unclipped[5:].mean())
    assert torch.allclose(clipped[:5], clipped[0].expand(5))  # all five at the clip
    assert not torch.allclose(unclipped[:5], unclipped[0].expand(5))


TRAINING = TrainConfig(epochs=2, batch_size=8, progress=False, min_batches_per_epoch=3)


def objective_config(kind: str, weight: float, training: TrainConfig = TRAINING) -> StrategyConfig:
    """A candidate of objective strategy `kind` at one weight, as its conf entry would make it."""
    knobs = STRATEGIES[kind].knobs({"weight": [weight]})
    return StrategyConfig(procedure="fit", adaptation=kind, spec=TransferSpec(), training=training, knobs=knobs)


def task_with_source(shared_label_space: bool) -> TargetTask:
    images, labels = toy_data()
    source_labels = labels if shared_label_space else labels % 5
    return TargetTask(
        {**SOURCE_CONFIG, "num_classes": 5},
        source_state(),
        3,
        (images, labels),
        (images, labels),
        source=(images, source_labels),
        unlabelled=images[:10],
        shared_label_space=shared_label_space,
    )


@pytest.mark.parametrize(
    "kind", ["l2_sp", "lwf", "coral", "dann", "importance_weighting", "rkd", "similarity_preserving"]
)
@pytest.mark.parametrize("shared_label_space", [True, False])
def test_every_adaptation_trains_and_counts_the_images_it_saw(kind, shared_label_space):
    config = objective_config(kind, 0.5)
    result = train_strategy(task_with_source(shared_label_space), config)
    assert [r["epoch"] for r in result.history] == [1, 2]
    count = len(toy_data()[0])
    steps = 2 * -(-max(count, 3 * 8) // 8)  # 2 epochs of batches of 8, at least 3 a epoch
    target_images = 2 * max(count, 3 * 8)
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    if kind in ("l2_sp", "lwf"):
        assert result.images_seen == target_images
    elif kind in ("coral", "dann"):
        assert result.images_seen == target_images + 2 * 8 * steps  # + a source and an unlabelled batch a step
    elif kind in ("rkd", "similarity_preserving"):
        assert result.images_seen == target_images + 8 * steps  # + an unlabelled batch a step
    else:  # + a source batch a step, and the domain classifier's features of source, target and unlabelled
        assert result.images_seen == target_images + 8 * steps + count + count + 10


def test_an_adaptation_run_is_seeded_and_resumes_like_an_uninterrupted_one(tmp_path):
    config = objective_config("dann", 0.5)
    first, second = (train_strategy(task_with_source(True), config) for _ in range(2))
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    coral = objective_config("coral", 0.5)  # no schedule tied to the epochs
    uninterrupted = train_strategy(task_with_source(True), coral)
    checkpoint = tmp_path / "coral.pt"
    train_strategy(
        task_with_source(True),
        coral.model_copy(update=dict(training=TRAINING.model_copy(update={"epochs": 1}))),
        checkpoint,
    )
    resumed = train_strategy(task_with_source(True), coral, checkpoint)  # as if killed after epoch 1
    for name, tensor in uninterrupted.model.state_dict().items():
        assert torch.allclose(tensor, resumed.model.state_dict()[name]), name


# --- Relational knowledge (Park et al. 2019; Tung & Mori 2019) ---------------------------------------


def huber(difference: np.ndarray) -> np.ndarray:
    magnitude = np.abs(difference)
    return np.where(magnitude < 1, 0.5 * difference**2, magnitude - 0.5)


def rkd_by_hand(student: np.ndarray, teacher: np.ndarray, angle_weight: float) -> float:
    """Park et al.'s potentials written out with loops: ψ_D over every pair, ψ_A over every triplet."""

    def distances(e):
        d = np.array([[np.linalg.norm(a - b) for b in e] for a in e])
        return d / d[~np.eye(len(e), dtype=bool)].mean()

    def angles(e):
        def unit(v):
            norm = np.linalg.norm(v)
            return v / norm if norm > 0 else v

        n = len(e)
        return np.array(
            [[[unit(e[i] - e[j]) @ unit(e[k] - e[j]) for k in range(n)] for j in range(n)] for i in range(n)]
        )

    distance = huber(distances(student) - distances(teacher)).mean()
    angle = huber(angles(student) - angles(teacher)).mean()
    return float(distance + angle_weight * angle)


def test_rkd_loss_is_the_huber_loss_of_park_et_al_distance_and_angle_potentials():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 3, generator=generator), 4 * torch.randn(5, 3, generator=generator)
    by_hand = rkd_by_hand(student.numpy().astype(np.float64), teacher.numpy().astype(np.float64), 2.0)
    assert float(rkd_loss(student, teacher, angle_weight=2.0)) == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("loss", [rkd_loss, similarity_preserving_loss])
def test_relational_loss_is_zero_when_the_embeddings_are_the_source_s_up_to_a_scale(loss):
    teacher = torch.randn(12, 6, generator=torch.Generator().manual_seed(1))
    for scale in (1.0, 0.01, 3.7, 250.0):
        assert float(loss(scale * teacher, teacher)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", [rkd_loss, similarity_preserving_loss])
def test_relational_loss_is_invariant_to_the_scale_of_either_model_s_embeddings(loss):
    generator = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(12, 6, generator=generator), torch.randn(12, 6, generator=generator)
    unscaled = float(loss(student, teacher))
    assert unscaled > 1e-3
    for scale in (0.01, 3.7, 250.0):
        assert float(loss(scale * student, teacher)) == pytest.approx(unscaled, rel=1e-4)
        assert float(loss(student, scale * teacher)) == pytest.approx(unscaled, rel=1e-4)


@pytest.mark.parametrize("loss", [rkd_loss, similarity_preserving_loss])
def test_relational_loss_grows_as_the_pairwise_structure_is_broken(loss):
    generator = torch.Generator().manual_seed(3)
    teacher = torch.randn(16, 8, generator=generator).abs()  # non-negative, as ReLU features are
    unrelated = torch.randn(16, 8, generator=generator).abs()
    mixes = [0.0, 0.1, 0.3, 0.6, 1.0]  # the share of each embedding that is unrelated to the teacher's
    losses = [float(loss((1 - a) * teacher + a * unrelated, teacher)) for a in mixes]
    assert losses[0] == pytest.approx(0.0, abs=1e-6)
    assert all(before < after for before, after in zip(losses, losses[1:])), losses
    shuffled = teacher[torch.randperm(16, generator=generator)]  # each image's embedding given to another
    assert float(loss(shuffled, teacher)) > losses[1]


def test_rkd_gives_the_teacher_no_gradient_and_moves_the_student_toward_its_relations():
    generator = torch.Generator().manual_seed(4)
    teacher = torch.randn(10, 4, generator=generator).requires_grad_(True)
    student = torch.randn(10, 4, generator=generator).requires_grad_(True)
    before = rkd_loss(student, teacher)
    before.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = student - 0.1 * student.grad
    assert float(rkd_loss(stepped, teacher)) < float(before.detach())


def test_relational_objective_compares_the_model_with_the_frozen_source_on_labelled_and_unlabelled_images():
    torch.manual_seed(0)
    source = tiny(num_classes=5).eval()
    unlabelled = torch.randint(0, 255, (30, 1, 12, 12), dtype=torch.uint8)
    objective = RelationalObjective(copy.deepcopy(source), unlabelled, 1.0, rkd_loss, batch_size=7, seed=0)
    model = copy.deepcopy(source).eval()
    inputs = torch.rand(4, 1, 12, 12)
    _, parts = objective.loss(model, inputs, torch.tensor([0, 1, 2, 3]))
    assert parts.outputs.shape == (4, 5) and parts.extra_images == 7  # the labelled and unlabelled batch
    student, teacher, extra = objective.embeddings(model, inputs)
    assert student.shape[0] == 4 + 7 and extra == 7
    assert float(objective.relational_loss(student, teacher).detach()) == pytest.approx(0.0, abs=1e-5)  # the source
    with torch.no_grad():
        model.blocks[0][0].weight.add_(0.5 * torch.randn_like(model.blocks[0][0].weight))
    student, teacher, _ = objective.embeddings(model, inputs)
    assert float(objective.relational_loss(student, teacher).detach()) > 1e-3
    assert all(not p.requires_grad for p in objective.teacher.module.parameters())
    assert not any(key.startswith("teacher") for key in objective.state_dict())  # catalogued, not checkpointed


def test_extra_batches_are_augmented_as_the_target_batch_is_and_seeded():
    images = torch.randint(0, 255, (20, 1, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    index = torch.arange(8)
    like = torch.zeros(1, 1, 12, 12)
    plain = ExtraBatches(8, seed=0, augment=(0.0, 0.0)).batch(images, index, like)
    assert torch.equal(plain, images[index].float() / 255)
    augmented = ExtraBatches(8, seed=0, augment=(10.0, 0.08)).batch(images, index, like)
    again = ExtraBatches(8, seed=0, augment=(10.0, 0.08)).batch(images, index, like)
    assert torch.equal(augmented, again) and not torch.allclose(augmented, plain)
    assert ((plain - augmented).abs().flatten(1).amax(1) > 0.05).all()  # every image moved, not some


@pytest.mark.parametrize("loss", [rkd_loss, similarity_preserving_loss])
def test_relational_loss_is_computed_in_fp32_under_bf16_autocast(loss):
    generator = torch.Generator().manual_seed(6)
    student, teacher = torch.randn(16, 8, generator=generator), torch.randn(16, 8, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(student, teacher)
    assert under_autocast.dtype == torch.float32
    assert float(under_autocast) == pytest.approx(float(loss(student, teacher)), rel=1e-6)


def test_each_objective_strategy_is_one_registry_entry_that_the_uses_column_reads():
    from headstart.params import StrategyParams

    objectives = {name: strategy for name, strategy in STRATEGIES.items() if isinstance(strategy, ObjectiveStrategy)}
    assert {"l2_sp", "lwf", "coral", "dann", "importance_weighting", "rkd", "similarity_preserving"} <= set(objectives)
    for kind, strategy in objectives.items():
        params = StrategyParams(copy_blocks="all", adaptation={"kind": kind, "weight": [1.0]})
        assert params.strategy is strategy
        assert params.uses == " + ".join(["source model", *strategy.uses])
    assert sorted(k for k, s in objectives.items() if s.replaces_weight_decay) == ["delta", "l2_sp"]
