"""TrAdaBoost (Dai et al., ICML 2007) against its definition: the weight update, the rounds, the final vote."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.strategies import StrategyConfig, TargetTask, extract_features, train_strategy
from headstart.ml.strategies.tradaboost import Boosted, learner_beta, source_factor, tradaboost, tradaboost_update
from headstart.ml.training import TrainConfig, evaluate
from headstart.ml.transfer import TransferSpec, load_full_state
from tests.ml.test_strategies import SOURCE_CONFIG
from tests.ml.test_transfer import tiny, toy_data


def test_one_round_multiplies_misclassified_source_weights_by_beta_and_target_weights_by_one_over_beta_t():
    # three source examples, then two target ones; the first and last source and the first target are wrong
    weights = np.array([0.2, 0.2, 0.2, 0.1, 0.3])
    wrong = np.array([True, False, True, True, False])
    rounds, classes = 4, 3
    updated, error, beta_t = tradaboost_update(
        weights, wrong, source_count=3, beta=source_factor(3, rounds), num_classes=3
    )
    beta = 1 / (1 + math.sqrt(2 * math.log(3) / rounds))  # the paper's β, n = 3 source examples, N = 4
    assert error == pytest.approx(0.1 / (0.1 + 0.3))  # the target examples' weighted error only
    assert beta_t == pytest.approx(0.25 / (0.75 * (classes - 1)))  # SAMME's form of ε/(1 − ε)
    by_hand = [0.2 * beta, 0.2, 0.2 * beta, 0.1 / beta_t, 0.3]
    assert updated == pytest.approx(by_hand)
    assert updated[0] < weights[0] and updated[3] > weights[3]  # source down, target up


def test_two_classes_give_the_paper_s_binary_rule():
    assert learner_beta(0.2, 2) == pytest.approx(0.2 / 0.8)
    assert learner_beta(0.7, 2) == pytest.approx(1.0)  # at chance or worse: no update, no vote
    assert learner_beta(0.0, 10) > 0  # a perfect round still gets a finite vote


class Scripted:
    """A learner stub: records the sample weights it was fitted with, predicts the labels it was given."""

    fitted: list = []

    def __init__(self, predictions):
        self.predictions = predictions

    def fit(self, features, labels, sample_weight):
        Scripted.fitted.append(sample_weight.copy())
        return self

    def predict(self, features):
        return self.predictions


def test_the_rounds_fit_each_learner_on_the_updated_weights_and_the_second_half_votes():
    source = (np.zeros((3, 2)), np.array([0, 1, 2]))
    target = (np.zeros((2, 2)), np.array([0, 1]))
    predictions = np.array([1, 1, 0, 1, 1])  # source 0 and 2 wrong, target 0 wrong
    Scripted.fitted = []
    boosted = tradaboost(source, target, rounds=3, num_classes=3, make_learner=lambda: Scripted(predictions))
    assert Scripted.fitted[0] == pytest.approx(np.ones(5))  # equal weights, scaled to mean 1
    wrong = predictions != np.concatenate([source[1], target[1]])
    expected, _, _ = tradaboost_update(np.full(5, 0.2), wrong, 3, source_factor(3, 3), 3)
    assert Scripted.fitted[1] == pytest.approx(expected * 5 / expected.sum())
    assert list(boosted.voting) == [1, 2]  # rounds ⌈3/2⌉ … 3
    assert boosted.vote_weights() == pytest.approx([math.log(1 / b) for b in boosted.betas[1:]])
    assert list(Boosted(learners=[None] * 5, betas=[0.5] * 5).voting) == [2, 3, 4]


def test_tradaboost_strategy_predicts_the_weighted_vote_of_its_second_half_learners():
    images, labels = toy_data()
    torch.manual_seed(1)
    state = tiny(num_classes=3).state_dict()
    source_images, source_labels = images.flip(-1), labels  # another domain, the same classes
    task = TargetTask(
        SOURCE_CONFIG | {"num_classes": 3},
        state,
        3,
        (images[:24], labels[:24]),
        (images[24:], labels[24:]),
        source=(source_images, source_labels),
        shared_label_space=True,
    )
    training = TrainConfig(progress=False)
    config = StrategyConfig(
        procedure="tradaboost",
        spec=TransferSpec(freeze_blocks="all"),
        training=training,
        setting={"boosting_rounds": 4},
    )
    result = train_strategy(task, config)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and "validation_accuracy" in result.history[-1]
    assert result.images_seen == len(source_images) + 24

    # the final hypothesis recomputed from scikit-learn's learners, as the paper defines it
    source_model = build_model(SOURCE_CONFIG | {"num_classes": 3})
    load_full_state(source_model, state)
    source_features = extract_features(source_model, source_images).double().numpy()
    target_features = extract_features(source_model, images[:24]).double().numpy()
    scaler = StandardScaler().fit(np.concatenate([source_features, target_features]))
    boosted = tradaboost(
        (scaler.transform(source_features), source_labels.numpy()),
        (scaler.transform(target_features), labels[:24].numpy()),
        4,
        3,
        lambda: LogisticRegression(max_iter=2000),
    )
    queries = scaler.transform(extract_features(source_model, images[24:]).double().numpy())
    votes = np.zeros((len(queries), 3))
    for t, weight in zip(boosted.voting, boosted.vote_weights()):
        votes[np.arange(len(queries)), boosted.learners[t].predict(queries)] += weight
    ours = evaluate(result.model, images[24:], labels[24:])["predictions"].numpy()
    assert (ours == votes.argmax(1)).all()

    stored = StoredModel.from_module(result.model, result.config)  # stored and rebuilt like every model
    rebuilt = StoredModel.decode(*stored.encode()).build()
    assert torch.equal(evaluate(rebuilt, images[24:], labels[24:])["predictions"], torch.as_tensor(ours))
    assert result.report.frozen_parameters == sum(p.numel() for p in source_model.blocks.parameters())


def test_tradaboost_needs_source_images_with_the_target_s_classes():
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG | {"num_classes": 3}, tiny().state_dict(), 3, (images, labels), (images, labels))
    config = StrategyConfig(
        procedure="tradaboost", spec=TransferSpec(freeze_blocks="all"), training=TrainConfig(progress=False)
    )
    with pytest.raises(ValueError, match="source images labelled with the target's classes"):
        train_strategy(task, config)
