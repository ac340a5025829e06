import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headstart.ml.strategies import StrategyConfig, TargetTask, extract_features, train_strategy
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_transfer import tiny, toy_data

SOURCE_CONFIG = {"name": "small_cnn", "widths": [4, 8]}
TRAINING = TrainConfig(epochs=2, batch_size=16, progress=False)


def source_state():
    torch.manual_seed(1)
    return tiny(num_classes=5).state_dict()


def task() -> TargetTask:
    images, labels = toy_data()
    return TargetTask(SOURCE_CONFIG, source_state(), 3, (images, labels), (images, labels))


def test_linear_classifier_head_predicts_what_scikit_learn_predicts():
    images, labels = toy_data()
    config = StrategyConfig(procedure="linear_classifier", spec=TransferSpec(freeze_blocks="all"), training=TRAINING)
    result = train_strategy(task(), config)
    features = extract_features(result.model, images).numpy()
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, labels.numpy())
    ours = result.model.head(torch.as_tensor(features)).argmax(1).numpy()
    assert (ours == reference.predict(features)).all()
    assert torch.equal(result.model.blocks[0][0].weight, source_state()["blocks.0.0.weight"])
    assert result.history[0]["validation_accuracy"] > 0.5


def test_probe_then_finetune_trains_the_head_first_then_everything():
    images, labels = toy_data()
    config = StrategyConfig(
        procedure="probe_then_finetune",
        spec=TransferSpec(freeze_blocks="all"),
        training=TRAINING.model_copy(update={"body_lr": 1e-4}),
        probe=TRAINING,
    )
    result = train_strategy(task(), config)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.report.frozen_parameters == 0  # the fine-tuning phase trains everything
    assert not torch.equal(result.model.blocks[0][0].weight, source_state()["blocks.0.0.weight"])


def test_a_seed_gives_the_same_model_and_scratch_copies_nothing():
    images, labels = toy_data()
    config = StrategyConfig(procedure="fit", spec=TransferSpec(copy_blocks=0), training=TRAINING)
    first, second = (train_strategy(task(), config) for _ in range(2))
    assert first.report.copied == []
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name


def test_pixel_references_predict_what_scikit_learn_predicts_on_the_raw_pixels():
    from sklearn.neighbors import KNeighborsClassifier

    from headstart.ml.training import evaluate, scale_images

    images, labels = toy_data()
    pixels = scale_images(images).flatten(1).numpy()
    logistic = StrategyConfig(
        procedure="linear_classifier", spec=TransferSpec(copy_blocks=0), training=TRAINING, model="pixels"
    )
    result = train_strategy(task(), logistic)
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(pixels, labels.numpy())
    assert (evaluate(result.model, images, labels)["predictions"].numpy() == reference.predict(pixels)).all()
    assert result.config["name"] == "pixel_linear" and result.report.copied == []
    queries = torch.randint(0, 255, (20, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    for neighbours in (1, 3):
        knn = StrategyConfig(
            procedure="nearest_neighbours",
            spec=TransferSpec(copy_blocks=0),
            training=TRAINING,
            model="pixels",
            neighbours=neighbours,
        )
        result = train_strategy(task(), knn)
        reference = KNeighborsClassifier(neighbours).fit(pixels, labels.numpy())
        ours = evaluate(result.model, queries, torch.zeros(20, dtype=torch.long))["predictions"].numpy()
        assert (ours == reference.predict(scale_images(queries).flatten(1).numpy())).all()


def test_tuning_keeps_the_setting_with_the_best_validation_accuracy():
    from headstart.ml.strategies import train_tuned

    images, labels = toy_data()
    validation = (images[:12], labels[:12])
    grid = [{"neighbours": 1}, {"neighbours": 40}]  # 40 of 48 neighbours: a near-uniform vote, worse on validation
    tuned = train_tuned(
        TargetTask(SOURCE_CONFIG, source_state(), 3, (images, labels), validation),
        grid,
        [0, 1],
        lambda s, seed: StrategyConfig(
            procedure="nearest_neighbours",
            spec=TransferSpec(copy_blocks=0),
            training=TRAINING.model_copy(update={"seed": seed}),
            model="pixels",
            **s,
        ),
    )
    assert tuned.setting == {"neighbours": 1} and tuned.validation_accuracy == 1.0 and set(tuned.results) == {0, 1}
