import pytest
import torch

from headstart.ml import progress
from headstart.ml.stacked_seeds import StackedModels, clip_per_seed, fit_seeds_together, why_not_stacked
from headstart.ml.strategies import StrategyConfig, TargetTask, seed_stacks, train_strategy, train_tuned
from headstart.ml.training import TrainConfig, fit
from headstart.ml.transfer import TransferSpec, transfer_model
from tests.ml.test_strategies import SOURCE_CONFIG, source_state
from tests.ml.test_transfer import toy_data

SEEDS = [0, 1, 2]


def seed_config(seed: int, **settings) -> TrainConfig:
    defaults = dict(
        epochs=6,
        batch_size=8,
        body_lr=3e-3,
        head_lr=1e-2,
        progress=False,
        device="cpu",
        channels_last=False,
        min_batches_per_epoch=6,
        augment={"max_rotation_deg": 10.0, "max_shift": 0.1},
        clip_grad_norm=0.5,
        patience=2,
        min_epochs=2,
        schedule="cosine",
        warmup_epochs=1,
    )
    return TrainConfig(seed=seed, **{**defaults, **settings})


def models_of(seeds, freeze=1):
    made = []
    for seed in seeds:
        torch.manual_seed(seed)
        made.append(transfer_model(SOURCE_CONFIG, source_state(), 3, TransferSpec(freeze_blocks=freeze))[0])
    return made


def test_each_seed_of_a_stack_trains_the_model_it_trains_alone():
    """Per seed: the same kept weights, history and early stop as separate training (float tolerance);
    the seeds differ from one another (their own initialisation, order and augmentation)."""
    images, labels = toy_data()
    train, validation = (images[:36], labels[:36]), (images[36:], labels[36:])
    alone_models, together_models = models_of(SEEDS), models_of(SEEDS)
    alone = [fit(m, train, validation, seed_config(s)) for m, s in zip(alone_models, SEEDS)]
    together = fit_seeds_together(together_models, train, validation, [seed_config(s) for s in SEEDS])
    for ours, theirs, ours_model, theirs_model in zip(together, alone, together_models, alone_models):
        assert (ours.best_epoch, ours.stopped_early, len(ours.history)) == (
            theirs.best_epoch,
            theirs.stopped_early,
            len(theirs.history),
        )
        for mine, reference in zip(ours.history, theirs.history):
            assert mine["validation_accuracy"] == pytest.approx(reference["validation_accuracy"], abs=1e-6)
            assert mine["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-4, abs=1e-5)
        reference = theirs_model.state_dict()
        for name, tensor in ours_model.state_dict().items():
            torch.testing.assert_close(tensor, reference[name], atol=1e-4, rtol=1e-3, msg=name)
    first, second = (m.state_dict()["head.weight"] for m in together_models[:2])
    assert not torch.allclose(first, second)


def test_a_paused_stack_resumes_to_the_model_an_unpaused_stack_makes(tmp_path):
    images, labels = toy_data()
    train, validation = (images[:36], labels[:36]), (images[36:], labels[36:])
    straight_models, paused_models = models_of(SEEDS), models_of(SEEDS)
    straight = fit_seeds_together(straight_models, train, validation, [seed_config(s, patience=None) for s in SEEDS])
    path = tmp_path / "stack.pt"
    fit_seeds_together(
        paused_models, train, validation, [seed_config(s, patience=None, pause_after=2) for s in SEEDS], path
    )
    resumed = fit_seeds_together(
        models_of(SEEDS), train, validation, [seed_config(s, patience=None) for s in SEEDS], path
    )
    assert [r.best_epoch for r in resumed] == [r.best_epoch for r in straight]
    assert [len(r.history) for r in resumed] == [6, 6, 6]
    with pytest.raises(ValueError, match="share every setting"):
        fit_seeds_together(models_of(SEEDS[:2]), train, validation, [seed_config(0), seed_config(1, epochs=3)])


def test_a_stack_killed_mid_epoch_resumes_from_its_checkpoint_to_the_uninterrupted_models(tmp_path):
    images, labels = toy_data()
    train, validation = (images[:36], labels[:36]), (images[36:], labels[36:])
    configs = [seed_config(s, epochs=4, patience=None, checkpoint_seconds=0.0, label=f"seed {s}") for s in SEEDS]
    straight_models = models_of(SEEDS)
    straight = fit_seeds_together(straight_models, train, validation, configs)
    records = []

    def die_in_the_third_epoch(event, label, payload):
        records.append(event)
        if records.count("epoch") == 2 * len(SEEDS) + 1:
            raise KeyboardInterrupt  # the kill: two epochs were checkpointed, the third is not

    path = tmp_path / "stack.pt"
    with pytest.raises(KeyboardInterrupt), progress.listening(die_in_the_third_epoch):
        fit_seeds_together(models_of(SEEDS), train, validation, configs, path)
    resumed_models = models_of([7, 8, 9])  # a fresh process: only the checkpoint survives
    resumed = fit_seeds_together(resumed_models, train, validation, configs, path)
    for ours, theirs, ours_model, theirs_model in zip(resumed, straight, resumed_models, straight_models):
        assert [r["epoch"] for r in ours.history] == [1, 2, 3, 4] and ours.best_epoch == theirs.best_epoch
        for name, tensor in theirs_model.state_dict().items():
            torch.testing.assert_close(ours_model.state_dict()[name], tensor, atol=1e-5, rtol=0, msg=name)


def test_the_clip_is_each_seeds_own():
    stacked = torch.nn.Parameter(torch.zeros(2, 3))
    stacked.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])  # norms 5 and 0.5
    clip_per_seed([stacked], 1.0)
    torch.testing.assert_close(stacked.grad[0].norm(), torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(stacked.grad[1], torch.tensor([0.3, 0.4, 0.0]))


def test_a_stack_holds_one_copy_per_seed_and_a_model_with_dropout_trains_alone():
    models = models_of(SEEDS)
    stacked = StackedModels(models)
    assert stacked.seeds == 3 and stacked.template.head.weight.shape[0] == 3
    torch.testing.assert_close(stacked.seed_state(1)["head.weight"], models[1].head.weight.detach())
    images, _ = toy_data()
    assert why_not_stacked(models[0], images, seed_config(0)) is None
    models[0].head = torch.nn.Sequential(torch.nn.Dropout(0.5), models[0].head)
    assert "dropout" in why_not_stacked(models[0], images, seed_config(0))


def test_tuning_trains_a_fit_candidates_seeds_in_one_stack_and_gets_what_separate_seeds_get():
    images, labels = toy_data()
    task = TargetTask(SOURCE_CONFIG, source_state(), 3, (images[:36], labels[:36]), (images[36:], labels[36:]))

    def configure(setting, seed, together=3):
        training = seed_config(seed, seeds_together=together, frozen_feature_views=None)
        scaled = training.model_copy(
            update={"body_lr": 3e-3 * setting["lr_scale"], "head_lr": 1e-2 * setting["lr_scale"]}
        )
        return StrategyConfig(procedure="fit", spec=TransferSpec(copy_blocks=0), training=scaled)

    assert seed_stacks(task, [configure({"lr_scale": 1.0}, s) for s in SEEDS]) == [[0, 1, 2]]
    assert seed_stacks(task, [configure({"lr_scale": 1.0}, s, together=2) for s in SEEDS]) == [[0, 1], [2]]
    assert seed_stacks(task, [configure({"lr_scale": 1.0}, s, together=1) for s in SEEDS]) == [[0], [1], [2]]
    grid = [{"lr_scale": 0.3}, {"lr_scale": 1.0}]
    tuned = train_tuned(task, grid, SEEDS, configure, eta=2)
    alone = {seed: train_strategy(task, configure(tuned.setting, seed, together=1)) for seed in SEEDS}
    for seed in SEEDS:
        assert tuned.results[seed].validation_accuracy == pytest.approx(alone[seed].validation_accuracy, abs=1e-6)
        assert len(tuned.results[seed].history) == len(alone[seed].history)
