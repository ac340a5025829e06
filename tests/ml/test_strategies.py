from dataclasses import replace

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headstart.ml.strategies import StrategyConfig, extract_features, train_strategy
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_transfer import tiny, toy_data

SOURCE_CONFIG = {"name": "small_cnn", "widths": [4, 8]}
TRAINING = TrainConfig(epochs=2, batch_size=16, progress=False)


def source_state():
    torch.manual_seed(1)
    return tiny(num_classes=5).state_dict()


def test_linear_classifier_head_predicts_what_scikit_learn_predicts():
    images, labels = toy_data()
    config = StrategyConfig("linear_classifier", TransferSpec(freeze_blocks="all"), TRAINING)
    result = train_strategy(SOURCE_CONFIG, source_state(), 3, (images, labels), (images, labels), config)
    features = extract_features(result.model, images).numpy()
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels.numpy())
    ours = result.model.head(torch.as_tensor(features)).argmax(1).numpy()
    assert (ours == reference.predict(features)).all()
    assert torch.equal(result.model.blocks[0][0].weight, source_state()["blocks.0.0.weight"])
    assert result.history[0]["validation_accuracy"] > 0.5


def test_probe_then_finetune_trains_the_head_first_then_everything():
    images, labels = toy_data()
    config = StrategyConfig(
        "probe_then_finetune", TransferSpec(freeze_blocks="all"), replace(TRAINING, body_lr=1e-4), probe=TRAINING
    )
    result = train_strategy(SOURCE_CONFIG, source_state(), 3, (images, labels), (images, labels), config)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.report.frozen_parameters == 0  # the fine-tuning phase trains everything
    assert not torch.equal(result.model.blocks[0][0].weight, source_state()["blocks.0.0.weight"])


def test_a_seed_gives_the_same_model_and_scratch_copies_nothing():
    images, labels = toy_data()
    config = StrategyConfig("fit", TransferSpec(copy_blocks=0), TRAINING)
    first, second = (train_strategy(SOURCE_CONFIG, source_state(), 3, (images, labels), (images, labels), config) for _ in range(2))
    assert first.report.copied == []
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
