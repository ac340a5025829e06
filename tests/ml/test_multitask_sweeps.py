"""The multi-task sweeps: their points' data and trunks, Δm per point against that point's single-task
networks, the transfer column, and the verdict computed from the table."""

import pandas as pd
import pytest
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.multitask.sweep_points import presence_tasks, scaled_trunk
from headstart.ml.multitask.sweeps import sweep_table
from headstart.ml.reports import multitask_sweep_verdict


def digits(count: int, seed: int) -> LabelledImages:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(count) % 10
    return LabelledImages(images, {"digit": labels}, {"digit": [str(d) for d in range(10)]})


def test_the_trunk_grows_by_its_channels_and_only_a_trunk_with_widths_can():
    trunk = {"name": "small_cnn", "in_channels": 1, "widths": [16, 32, 64]}
    assert scaled_trunk(trunk, 0.25)["widths"] == [4, 8, 16]
    assert scaled_trunk(trunk, 0.01)["widths"] == [1, 1, 1]
    assert scaled_trunk(trunk, 2)["widths"] == [32, 64, 128] and trunk["widths"] == [16, 32, 64]
    with pytest.raises(ValueError, match="multitask_sweeps.capacity.*resnet18"):
        scaled_trunk({"name": "resnet18"}, 2)


def test_presence_tasks_label_every_training_image_for_the_first_n_digits():
    train, validation, test = presence_tasks((digits(200, 0), digits(100, 1), digits(100, 2)), 30, 3, 20, 40, 0)
    assert list(train.labels) == ["has_0", "has_1", "has_2"] and len(train) == 30
    assert (len(validation), len(test)) == (20, 40)
    assert all((labels >= 0).all() for labels in train.labels.values())  # every image labels every task
    with pytest.raises(ValueError, match="11 tasks asked"):
        presence_tasks((digits(50, 0), digits(50, 1), digits(50, 2)), 20, 11, 20, 20, 0)


def results(points: dict[tuple[int, str], dict[str, list[float]]]) -> pd.DataFrame:
    """Rows as evaluate_methods makes them: accuracy = macro-F1 per (labels, trunk), method and seed."""
    rows = []
    for (labels, trunk), methods in points.items():
        for method, per_seed in methods.items():
            for seed, accuracy in enumerate(per_seed):
                for task in ("a", "b"):
                    rows.append(
                        {
                            "method": method,
                            "seed": seed,
                            "task": task,
                            "accuracy": accuracy,
                            "macro_f1": accuracy,
                            "parameters": 10,
                            "train_seconds": 1.0,
                            "inference_seconds": 0.1,
                            "labels_per_task": labels,
                            "trunk": trunk,
                        }
                    )
    return pd.DataFrame(rows)


def test_each_point_is_measured_against_its_own_single_task_networks_and_the_scratch_ones():
    measured = results(
        {
            (20, "scratch"): {"single": [0.50, 0.50, 0.50], "shared": [0.60, 0.61, 0.59]},
            (20, "source"): {"single": [0.80, 0.80, 0.80], "shared": [0.80, 0.80, 0.80]},
            (100, "scratch"): {"single": [0.80, 0.80, 0.80], "shared": [0.72, 0.72, 0.72]},
            (100, "source"): {"single": [0.90, 0.90, 0.90], "shared": [0.90, 0.90, 0.90]},
        }
    )
    table = sweep_table(measured, ["labels_per_task", "trunk"], "single", None, reference=("trunk", "scratch"))
    rows = table.set_index(["labels_per_task", "trunk", "method"])
    assert rows.loc[(20, "scratch", "shared"), "delta_m"] == pytest.approx(-20.0)  # 20 % better
    assert rows.loc[(100, "scratch", "shared"), "delta_m"] == pytest.approx(10.0)  # 10 % worse
    assert rows.loc[(20, "source", "shared"), "delta_m"] == pytest.approx(0.0)
    # against the scratch trunk's single-task networks at the same labels: transfer's gain and sharing's
    assert rows.loc[(20, "source", "shared"), "delta_m_vs_scratch"] == pytest.approx(-60.0)
    assert rows.loc[(100, "source", "single"), "delta_m_vs_scratch"] == pytest.approx(-12.5)
    assert rows.loc[(100, "scratch", "shared"), "delta_m_vs_scratch"] == pytest.approx(10.0)
    assert rows.loc[(20, "scratch", "shared"), "mean_accuracy"] == pytest.approx(0.60)
    assert list(table.columns[:3]) == ["labels_per_task", "trunk", "method"]

    verdict = multitask_sweep_verdict(table, ["labels_per_task", "trunk"], "single")
    assert "wins, the interval clear below zero, at shared at labels_per_task=20, trunk=scratch (Δm -20.0 %" in verdict
    assert "It loses, the interval clear above zero, at shared at labels_per_task=100, trunk=scratch" in verdict
    assert "2 of 4 method × point pairs are inside the noise" in verdict
