import logging
import os

import pandas as pd
import pytest
import torch

from headstart.ml.config import TrainConfig
from headstart.ml.data.images import LabelledImages
from headstart.ml.models.stored import StoredModel
from headstart.ml.studies import SweepArm, labels_saved, layer_sweep, layer_sweep_spec
from headstart.ml.workers import Workers
from tests.ml.test_transfer import tiny, toy_data


def curve_rows(strategy, accuracies, validation=None):
    budgets = [("1", 1.0, 2.0), ("5", 5.0, 10.0), ("20", 20.0, 40.0), ("all", 100.6, 125.7)]
    return [
        {
            "strategy": strategy,
            "labels_per_class": label,
            "k": k,
            "labels_used": used,
            "seed": seed,
            "accuracy": accuracy + offset,
            "validation_accuracy": accuracy if validation is None else validation,
        }
        for (label, k, used), accuracy in zip(budgets, accuracies)
        for seed, offset in ((0, -0.01), (1, 0.01))
    ]


def test_labels_saved_reads_the_fewest_labels_used_at_which_the_best_baseline_matches():
    curve = pd.DataFrame(
        curve_rows("scratch", [0.30, 0.70, 0.90, 0.95]) + curve_rows("transfer", [0.70, 0.92, 0.96, 0.97])
    )
    saved = labels_saved(curve, ["scratch"]).set_index("labels_per_class")
    assert saved.loc["1", "best_baseline_matches_at_labels_used"] == 10.0
    assert saved.loc["1", "labels_saved_per_class"] == 8.0  # 10 labels used (5 + 5) against 2 (1 + 1)
    assert saved.loc["5", "best_baseline_matches_at_labels_used"] == 125.7
    assert saved.loc["5", "labels_saved_per_class"] == pytest.approx(115.7)
    assert saved.loc["20", "labels_saved_per_class"] == "not reached"


def test_labels_saved_follows_the_baseline_chosen_on_validation_at_each_budget():
    """`pixels` is better on test at k = 1 but worse on validation: the best-baseline curve stays on scratch there."""
    curve = pd.DataFrame(
        curve_rows("scratch", [0.30, 0.70, 0.90, 0.95], validation=0.6)
        + curve_rows("pixels", [0.72, 0.75, 0.80, 0.85], validation=0.5)
        + curve_rows("transfer", [0.70, 0.92, 0.96, 0.97])
    )
    saved = labels_saved(curve, ["scratch", "pixels"]).set_index("labels_per_class")
    assert saved.loc["1", "best_baseline_here"] == "scratch" and saved.loc["1", "matched_by"] == "scratch"
    assert saved.loc["1", "labels_saved_per_class"] == 8.0
    curve.loc[curve["strategy"] == "pixels", "validation_accuracy"] = 0.9  # now pixels is chosen everywhere
    saved = labels_saved(curve, ["scratch", "pixels"]).set_index("labels_per_class")
    assert saved.loc["1", "best_baseline_here"] == "pixels" and saved.loc["1", "labels_saved_per_class"] == 0.0


def test_layer_sweep_arms_copy_and_freeze_as_yosinski_describes():
    frozen = layer_sweep_spec(SweepArm(from_source=True, frozen=True), 2)
    assert frozen.copy_blocks == 2 and frozen.freeze_blocks == 2
    assert layer_sweep_spec(SweepArm(from_source=True, frozen=False), 2).freeze_blocks == 0
    control = layer_sweep_spec(SweepArm(from_source=False, frozen=True), 2)
    assert control.copy_blocks == 0 and control.freeze_blocks == 2


def _train_seed(seed: int) -> dict:
    from headstart.ml.strategies import StrategyConfig, train_strategy
    from headstart.ml.training import TrainConfig
    from headstart.ml.transfer import TransferSpec
    from tests.ml.test_strategies import task

    config = StrategyConfig(
        procedure="fit", spec=TransferSpec(copy_blocks=0), training=TrainConfig(epochs=2, batch_size=16, seed=seed)
    )
    logging.getLogger("headstart.study").info("point with seed %d", seed)
    return train_strategy(task(), config).model.state_dict()


def test_trainings_in_two_processes_equal_the_same_trainings_in_this_one_and_their_logs_show_here(caplog):
    from headstart.ml.studies import parallel_map

    in_order = parallel_map(_train_seed, [0, 1], workers=1)
    caplog.clear()
    with caplog.at_level("INFO"):
        in_parallel = parallel_map(_train_seed, [0, 1], workers=2)
    assert sorted(r.getMessage() for r in caplog.records if r.name == "headstart.study") == [
        "point with seed 0",
        "point with seed 1",
    ]
    assert {r.process for r in caplog.records if r.name == "headstart.study"} != {os.getpid()}  # from the workers
    for alone, spawned in zip(in_order, in_parallel):
        for name, tensor in alone.items():
            assert torch.allclose(tensor, spawned[name], atol=1e-5), name
    assert not torch.equal(in_order[0]["head.weight"], in_order[1]["head.weight"])  # the seeds differ


def test_labels_saved_interval_resamples_seeds_and_widens_where_the_seeds_disagree():
    from headstart.ml.studies import labels_saved_interval

    curve = pd.DataFrame(
        curve_rows("scratch", [0.30, 0.70, 0.90, 0.95]) + curve_rows("transfer", [0.70, 0.92, 0.96, 0.97])
    )
    column = "labels_saved_95pct_bootstrap_n2"
    steady = labels_saved_interval(curve, ["scratch"], resamples=200).set_index("labels_per_class")[column]
    assert steady["1"] == "[+8.0, +8.0]"  # both seeds read off the same budget: no spread
    assert steady["20"] == "not reached"
    # seed 1 of the transfer strategy falls to scratch's k=1 level: a resample of it alone saves nothing
    curve.loc[
        (curve["strategy"] == "transfer") & (curve["seed"] == 1) & (curve["labels_per_class"] == "1"), "accuracy"
    ] = 0.2
    spread = labels_saved_interval(curve, ["scratch"], resamples=200).set_index("labels_per_class")[column]
    assert spread["1"] == "[+0.0, +8.0]"


class CountingWorkers(Workers):
    submitted = 0

    def submit(self, function, *args):
        self.submitted += 1
        return super().submit(function, *args)


def test_the_layer_sweep_trains_its_points_in_the_workers_with_the_same_rows_as_alone():
    images, labels = toy_data(n=72)
    pool = LabelledImages(images[:48], {"digit": labels[:48]}, {"digit": ["a", "b", "c"]})
    held = LabelledImages(images[48:], {"digit": labels[48:]}, {"digit": ["a", "b", "c"]})
    torch.manual_seed(0)
    source = StoredModel.from_module(
        tiny(num_classes=5), {"name": "small_cnn", "in_channels": 1, "num_classes": 5, "widths": [4, 8]}
    )
    arms = {
        "copied_frozen": SweepArm(from_source=True, frozen=True),
        "random_frozen": SweepArm(from_source=False, frozen=True),
    }
    training = TrainConfig(epochs=2, min_epochs=1, patience=1, batch_size=16, progress=False)

    def sweep(workers):
        return layer_sweep(
            source,
            pool,
            pool,
            held,
            [0, 1],
            arms,
            4,
            2,
            [0, 1],
            lambda seed: training.model_copy(update={"seed": seed}),
            {"epochs": 2},
            workers,
        )

    alone, alone_runs = sweep(Workers(1))
    workers = CountingWorkers(2)
    try:
        pooled, pooled_runs = sweep(workers)
    finally:
        workers.close()
    assert len(alone) == 2 * 2 * 2 and len(alone_runs) == 2 * 3  # n = 0 trained once per seed
    assert workers.submitted == 2 * 3  # every trained point, in the pool
    timings = [column for column in alone if "seconds" in column]
    assert timings  # how long each took is the one thing that may differ
    pd.testing.assert_frame_equal(pooled.drop(columns=timings), alone.drop(columns=timings))
    assert [run["run_name"] for run in pooled_runs] == [run["run_name"] for run in alone_runs]
    at_zero = alone[alone["blocks"] == 0].groupby("seed")["accuracy"].nunique()
    assert (at_zero == 1).all()
    frozen = alone[alone["blocks"] == 1]
    assert (frozen["trainable_parameters"] < alone[alone["blocks"] == 0]["trainable_parameters"].min()).all()
