"""The self-training strategy (FixMatch) and the fine-tuning regularisers (BSS, DELTA) by their definitions
(shared/REFERENCE.md), and each trained end to end through the one template."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from headstart.ml.strategies import STRATEGIES, StrategyConfig, TargetTask, train_strategy
from headstart.ml.strategies.bss import BSSObjective, bss_penalty
from headstart.ml.strategies.delta import channel_attention, delta_penalty, head_penalty
from headstart.ml.strategies.fixmatch import FixMatchKnobs, pseudo_labels, strong_view, unlabelled_loss
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import tiny, toy_data

TRAINING = TrainConfig(epochs=2, batch_size=8, progress=False, min_batches_per_epoch=3)


def weak_logits_with(confidences: list[float]) -> torch.Tensor:
    """Two-class logits whose softmax puts `confidence` on class 0 (below ½: on class 1)."""
    p = torch.tensor([[c, 1 - c] for c in confidences])
    return p.log()


def test_fixmatch_mask_keeps_exactly_the_pseudo_labels_at_or_above_the_threshold():
    logits = weak_logits_with([0.97, 0.949, 0.3, 0.951, 0.5001])
    tau = float(logits[3].softmax(0).max())  # a confidence exactly at τ is kept
    labels, mask = pseudo_labels(logits, tau)
    assert labels.tolist() == [0, 0, 1, 0, 0]
    assert mask.tolist() == [True, False, False, True, False]
    _, stricter = pseudo_labels(logits, 0.96)
    assert stricter.tolist() == [True, False, False, False, False]


def test_fixmatch_unlabelled_loss_is_the_masked_cross_entropy_over_every_unlabelled_image():
    weak = weak_logits_with([0.99, 0.6, 0.02, 0.96])  # passes τ = 0.95: images 0, 2 (class 1 at 0.98) and 3
    strong = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.4], [1.5, 1.6]])
    by_hand = 0.0
    for row, (label, kept) in enumerate([(0, True), (0, False), (1, True), (0, True)]):
        if kept:
            probabilities = np.exp(strong[row].numpy()) / np.exp(strong[row].numpy()).sum()
            by_hand -= np.log(probabilities[label])
    by_hand /= 4  # (1/μB): over all four unlabelled images, the kept and the dropped
    assert float(unlabelled_loss(weak, strong, 0.95)) == pytest.approx(by_hand, rel=1e-6)
    assert float(unlabelled_loss(weak, strong, 0.999)) == 0.0  # nothing passes: no pull at all


def test_fixmatch_strong_view_is_seeded_and_differs_from_the_image():
    images = torch.rand(6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    knobs = FixMatchKnobs(weight=[1.0])
    first = strong_view(images, torch.Generator().manual_seed(1), knobs)
    again = strong_view(images, torch.Generator().manual_seed(1), knobs)
    assert torch.equal(first, again) and first.shape == images.shape
    assert ((first - images).abs().flatten(1).amax(1) > 0.1).all()
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_bss_penalty_is_the_sum_of_the_k_smallest_squared_singular_values():
    features = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    singular = np.linalg.svd(features.numpy().astype(np.float64), compute_uv=False)  # descending
    for k in (1, 2, 4):
        by_hand = float((np.sort(singular)[:k] ** 2).sum())
        assert float(bss_penalty(features, k)) == pytest.approx(by_hand, rel=1e-5)
    wide = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))  # b < d: b singular values
    assert float(bss_penalty(wide, 1)) == pytest.approx(float(np.linalg.svd(wide.numpy())[1][-1] ** 2), rel=1e-5)


def test_bss_objective_adds_eta_times_the_penalty_to_the_cross_entropy():
    torch.manual_seed(0)
    model = tiny(num_classes=3).eval()
    inputs, targets = torch.rand(5, 1, 12, 12), torch.tensor([0, 1, 2, 0, 1])
    loss, parts = BSSObjective(weight=0.5, smallest=1).loss(model, inputs, targets)
    features = model.forward_features(inputs)
    expected = F.cross_entropy(model.head(features), targets) + 0.5 * bss_penalty(features, 1)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6) and parts.outputs.shape == (5, 3)


def test_delta_term_equals_its_formula_on_two_channels():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    attention = torch.tensor([0.25, 0.75])
    # image 1: 0.25·1² + 0.75·0² = 0.25; image 2: 0.25·2² + 0.75·3² = 7.75; mean 4.0; α = 0.5
    assert float(delta_penalty(student, teacher, attention, alpha=0.5)) == pytest.approx(2.0)
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        head.bias.copy_(torch.tensor([0.5, 0.0]))
    model = torch.nn.Module()
    model.head = head
    assert float(head_penalty(model, beta=0.2)) == pytest.approx(0.1 * (1 + 4 + 1 + 0.25))


def test_delta_attention_weighs_the_channel_the_labels_need():
    generator = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    informative = labels * 4.0 + generator.normal(0, 0.5, 40)
    noise = generator.normal(0, 1.0, 40)
    attention = channel_attention(np.stack([noise, informative], axis=1), labels)
    assert float(attention.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(attention[1]) > float(attention[0])


def task_with_unlabelled() -> TargetTask:
    images, labels = toy_data()
    return TargetTask(
        {**SOURCE_CONFIG, "num_classes": 5},
        source_state(),
        3,
        (images, labels),
        (images, labels),
        unlabelled=images[:20],
    )


@pytest.mark.parametrize("name", ["fixmatch", "bss", "delta"])
def test_each_new_strategy_trains_through_the_template_and_counts_its_images(name):
    knobs = STRATEGIES[name].knobs({"weight": [0.5], **({"unlabelled_ratio": 2} if name == "fixmatch" else {})})
    config = StrategyConfig(adaptation=name, spec=TransferSpec(), training=TRAINING, knobs=knobs)
    result = train_strategy(task_with_unlabelled(), config)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    count = len(toy_data()[0])
    target_images, steps = 2 * max(count, 3 * 8), 2 * -(-max(count, 3 * 8) // 8)
    extra = 2 * 2 * 8 * steps if name == "fixmatch" else 0  # a weak and a strong view of μ·B a step
    assert result.images_seen == target_images + extra
    again = train_strategy(task_with_unlabelled(), config)
    for key, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[key]), key


def test_fixmatch_without_unlabelled_images_is_refused_by_name():
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG, source_state(), 3, (images, labels), (images, labels))
    config = StrategyConfig(
        adaptation="fixmatch", training=TRAINING, knobs=STRATEGIES["fixmatch"].knobs({"weight": [1]})
    )
    with pytest.raises(ValueError, match="fixmatch trains on unlabelled target images"):
        train_strategy(task, config)
