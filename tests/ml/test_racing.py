import torch

from headstart.ml.racing import best_in_history, rung_epochs, successive_halving, survivors
from headstart.ml.strategies import StrategyConfig, TargetTask, train_tuned
from headstart.ml.training import TrainConfig
from headstart.ml.transfer import TransferSpec
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import toy_data


def test_rungs_cut_the_grid_to_one_at_eta_fractions_of_the_budget():
    assert rung_epochs(40, 3, 3) == [13]  # one rung at E/3, then the survivor to E
    assert rung_epochs(40, 9, 3) == [4, 13]
    assert rung_epochs(40, 4, 2) == [10, 20]
    assert rung_epochs(40, 1, 3) == [] and rung_epochs(2, 3, 3) == [1]
    assert rung_epochs(1, 3, 3) == []  # a one-epoch budget cannot be cut


def test_survivors_are_the_best_third_and_ties_keep_the_grid_order():
    scores = {"a": (0.5, -1.0), "b": (0.9, -2.0), "c": (0.9, -2.0), "d": (0.1, 0.0)}
    assert survivors(scores, ["a", "b", "c", "d"], 3) == ["b", "c"]
    assert survivors(scores, ["a", "c", "b", "d"], 3) == ["c", "b"]
    assert survivors({"a": (0.5, -1.0), "b": (0.5, -0.5)}, ["a", "b"], 3) == ["b"]  # lower loss breaks the tie


def test_successive_halving_trains_only_survivors_further():
    asked = []

    def score_at(candidate, epochs):
        asked.append((candidate, epochs))
        return (candidate * epochs,)

    alive, rungs = successive_halving([1, 2, 3, 4, 5, 6, 7, 8, 9], [4, 13], 3, score_at)
    assert alive == [9] and [r["kept"] for r in rungs] == [[9, 8, 7], [9]]
    assert asked == [(c, 4) for c in range(1, 10)] + [(9, 13), (8, 13), (7, 13)]


def test_best_in_history_is_the_epoch_fit_keeps_up_to_the_rung():
    history = [
        {"epoch": 1, "validation_accuracy": 0.5, "validation_loss": 1.0},
        {"epoch": 2, "validation_accuracy": 0.7, "validation_loss": 0.9},
        {"epoch": 3, "validation_accuracy": 0.7, "validation_loss": 0.8},
        {"epoch": 4, "validation_accuracy": 0.9, "validation_loss": 0.5},
    ]
    assert best_in_history(history, 3) == (0.7, -0.8) and best_in_history(history, 4) == (0.9, -0.5)


def raced_and_full(tmp_path, augment: bool):
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG, source_state(), 3, (images[:36], labels[:36]), (images[36:], labels[36:]))
    training = TrainConfig(
        epochs=6,
        batch_size=8,
        body_lr=3e-3,
        head_lr=3e-3,
        progress=False,
        device="cpu",
        checkpoint_seconds=1e9,
        augment={"max_rotation_deg": 10.0 if augment else 0.0, "max_shift": 0.1 if augment else 0.0},
    )
    grid = [{"lr_scale": 0.1}, {"lr_scale": 1.0}, {"lr_scale": 10.0}]

    def configure(setting, seed):
        config = training.model_copy(update={"seed": seed, "body_lr": 3e-3 * setting["lr_scale"]})
        return StrategyConfig(procedure="fit", spec=TransferSpec(freeze_blocks=1), training=config)

    raced = train_tuned(task, grid, [0], configure, lambda s, seed: tmp_path / f"{s['lr_scale']}-{seed}.pt", eta=3)
    alone = train_tuned(task, [raced.setting], [0], configure)  # the kept setting, trained straight through
    full = train_tuned(task, grid, [0], configure)
    return raced, alone, full


def test_a_raced_survivor_ends_as_the_same_model_as_its_uninterrupted_training(tmp_path):
    raced, alone, full = raced_and_full(tmp_path, augment=True)
    assert [r["epochs"] for r in raced.rungs] == [2] and len(raced.rungs[0]["scores"]) == 3
    assert raced.rungs[0]["kept"] == [raced.setting_text()] and not alone.rungs and not full.rungs
    for seed in (0,):
        trained, reference = raced.results[seed].model.state_dict(), alone.results[seed].model.state_dict()
        assert all(torch.equal(trained[k], reference[k]) for k in reference)
        assert raced.results[seed].history == alone.results[seed].history
        assert raced.results[seed].images_seen == alone.results[seed].images_seen
    # the full grid trains 3 × 6 epochs per seed, the race 3 × 2 + 4: fewer images through a network
    assert raced.grid_images_seen == (3 * 2 + 4) / 18 * full.grid_images_seen
    assert not list(tmp_path.iterdir())  # every checkpoint of the race is gone, the survivor's too


def test_resuming_a_paused_training_gives_the_uninterrupted_model(tmp_path):
    from headstart.ml.training import fit
    from tests.ml.test_transfer import tiny

    images, labels = toy_data()
    config = TrainConfig(
        epochs=5, batch_size=8, progress=False, device="cpu", augment={"max_rotation_deg": 10.0, "max_shift": 0.1}
    )
    torch.manual_seed(0)
    straight = tiny()
    torch.manual_seed(0)
    paused = tiny()
    fit(straight, (images, labels), (images, labels), config)
    first = fit(
        paused, (images, labels), (images, labels), config.model_copy(update={"pause_after": 2}), tmp_path / "c.pt"
    )
    assert len(first.history) == 2
    torch.manual_seed(0)
    resumed = tiny()
    fit(resumed, (images, labels), (images, labels), config, tmp_path / "c.pt")
    assert all(torch.equal(v, straight.state_dict()[k]) for k, v in resumed.state_dict().items())


def test_no_rung_comes_before_the_trainings_min_epochs():
    assert rung_epochs(40, 3, 3) == [13]
    assert rung_epochs(40, 3, 3, earliest=20) == [20]  # judged once a network from scratch has left chance
    assert rung_epochs(40, 9, 3, earliest=20) == [20]  # E/9 and E/3 both lifted to 20: one rung
    assert rung_epochs(40, 3, 3, earliest=40) == []  # no rung left before the full budget: the whole grid
