"""The cost estimate against what the transfer nodes then train, and its limit stopping a pipeline slice
(SequentialRunner, in-memory catalog) before any training."""

import math

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from headstart.ml import training
from headstart.ml.data.images import LabelledImages
from headstart.ml.errors import CostLimitError
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.strategies import classical, tuning
from headstart.params import RuntimeParams, TransferParams
from headstart.pipelines.transfer import create_pipeline
from headstart.pipelines.transfer.nodes import estimate_cost, train_target_models
from tests.ml.test_transfer import toy_data

SOURCE = {"name": "small_cnn", "in_channels": 1, "num_classes": 3, "widths": [4, 8]}
SMALL = {"epochs": 2, "batch_size": 8, "min_batches_per_epoch": 3}
TRANSFER = {
    "seeds": [0, 1],
    "lr_scales": [1.0],
    "strategies": {
        "scratch": {"copy_blocks": 0, "lr_scales": [0.3, 1.0], "training": SMALL},
        "pixels_logistic": {"model": "pixels", "procedure": "linear_classifier", "copy_blocks": 0, "lr_scales": [1, 9]},
        "pixels_knn": {"model": "pixels", "procedure": "nearest_neighbours", "copy_blocks": 0, "neighbours": [1, 3]},
        "lp_ft": {
            "procedure": "probe_then_finetune",
            "freeze_blocks": "all",
            "probe": {**SMALL, "epochs": 1, "min_batches_per_epoch": None},
            "training": SMALL,
        },
        "coral": {"adaptation": {"kind": "coral", "weight": [0.1, 1.0]}, "training": {**SMALL, "epochs": 1}},
        "tradaboost": {"procedure": "tradaboost", "freeze_blocks": "all", "boosting_rounds": [2, 3]},
    },
}


def labelled(count: int, seed: int, classes=("a", "b", "c")) -> LabelledImages:
    images, labels = toy_data(count)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return LabelledImages(images[order], {"digit": labels[order]}, {"digit": list(classes)})


def inputs() -> dict:
    torch.manual_seed(0)
    return {
        "source_model": {"source": StoredModel.from_module(build_model(SOURCE), SOURCE)},
        "target_train": labelled(12, 1),
        "target_validation": labelled(12, 2),
        "target_test": labelled(12, 3),
        "source_train": labelled(24, 4),
        "target_unlabelled": labelled(12, 5),
    }


def test_the_estimate_counts_the_trainings_and_steps_the_nodes_then_train(monkeypatch, tmp_path):
    transfer = TransferParams.model_validate({**TRANSFER, "racing_eta": None})  # each training once, to its end
    # each seed alone, through train_strategy and train_one_epoch (a stack makes the same steps, S seeds at once)
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), seeds_together=1, workers=1)  # counted here
    data = inputs()
    table, summary = estimate_cost(**data, transfer=transfer, runtime=runtime)
    counted = {"trainings": 0, "steps": 0}
    train_strategy, train_one_epoch = tuning.train_strategy, training.train_one_epoch

    def counting_training(*args, **kwargs):
        counted["trainings"] += 1
        return train_strategy(*args, **kwargs)

    def counting_steps(*args, **kwargs):
        order, config = args[7], args[8]
        counted["steps"] += math.ceil(len(order) / config.batch_size)
        return train_one_epoch(*args, **kwargs)

    for module in (tuning, classical):  # a network's trainings, and a classical reference's refits
        monkeypatch.setattr(module, "train_strategy", counting_training)
    monkeypatch.setattr(training, "train_one_epoch", counting_steps)
    rows = table.set_index("strategy")
    for name in TRANSFER["strategies"]:
        counted.update(trainings=0, steps=0)
        uses = {"source_train", "target_unlabelled"} if name in ("coral", "tradaboost") else set()
        given = {k: v for k, v in data.items() if k in {"source_model", "target_train", "target_validation"} | uses}
        train_target_models(**given, transfer=transfer, runtime=runtime, strategy=name)
        assert rows.loc[name, "trainings"] == counted["trainings"], name
        # no patience: every epoch runs, so the upper bound is what was trained
        assert rows.loc[name, "trainings"] * rows.loc[name, "steps_per_training"] == counted["steps"], name
    assert list(rows["trainings"]) == [4, 2, 2, 2, 4, 4]  # grid × seeds; the pixels' settings cross-validated
    assert rows.loc["lp_ft", "steps_per_training"] == 1 * 2 + 2 * 3  # the probe: ⌈12/8⌉ a epoch; then 3 a epoch
    assert summary["estimated_trainings"] == 18 and summary["estimated_seconds"] == pytest.approx(
        rows["expected_seconds"].sum()
    )


def test_time_budget_minutes_stops_the_pipeline_before_any_training_and_keeps_the_estimate(tmp_path):
    baselines = {k: v for k, v in TRANSFER["strategies"].items() if k.startswith(("scratch", "pixels"))}
    transfer = TransferParams.model_validate({**TRANSFER, "strategies": baselines, "seeds": [0, 1, 2], "looks": [3]})
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), time_budget_minutes=1e-6, workers=1)
    nodes = ("train_target_models", "evaluate_target_models")
    trainings = [f"{strategy}.{node}" for strategy in ("scratch", "pixels_knn") for node in nodes]
    pipeline = create_pipeline().only_nodes("estimate_cost", "check_cost_limit", *trainings)
    catalog = DataCatalog({name: MemoryDataset(data, copy_mode="assign") for name, data in inputs().items()})
    catalog["params:transfer"], catalog["params:runtime"] = MemoryDataset(transfer), MemoryDataset(runtime)
    for name in pipeline.all_outputs():
        catalog[name] = MemoryDataset(copy_mode="assign")
    catalog["transfer_cost_table"] = kept = KeptDataset(copy_mode="assign")
    with pytest.raises(
        CostLimitError, match=r"exceeds runtime\.time_budget_minutes = 1e-06; nothing was trained"
    ) as stopped:
        SequentialRunner().run(pipeline, catalog)
    assert "- transfer.looks, the first look's seeds: 3 → 2: saves" in str(stopped.value)
    assert list(kept.load()["strategy"]) == ["scratch", "pixels_logistic", "pixels_knn"]
    for strategy in ("scratch", "pixels_knn"):
        for output in ("trained_models", "target_models", "test_evaluation"):
            assert not catalog.exists(f"{strategy}.{output}"), f"{strategy}.{output} was saved"


class KeptDataset(MemoryDataset):
    """Not released after its last consumer, so the test reads it after the run."""

    def _release(self) -> None:
        pass


def test_a_strategy_that_cannot_run_on_the_task_is_named_before_training_and_trains_nothing(tmp_path):
    """A target whose classes are not the source's: TrAdaBoost is left out by the estimate (named, not
    priced) and its node trains nothing; the others train."""
    transfer = TransferParams.model_validate(TRANSFER)
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), workers=1)
    data = inputs()
    data["target_train"], data["target_validation"] = labelled(12, 1, "xyz"), labelled(12, 2, "xyz")
    data["target_test"] = labelled(12, 3, "xyz")
    table, summary = estimate_cost(**data, transfer=transfer, runtime=runtime)
    assert set(summary["not_applicable"]) == {"tradaboost"} and "tradaboost" not in set(table["strategy"])
    assert "classes are not the target's" in summary["not_applicable"]["tradaboost"]
    given = {k: data[k] for k in ("source_model", "target_train", "target_validation", "source_train")}
    assert train_target_models(**given, transfer=transfer, runtime=runtime, strategy="tradaboost") == {}
    trained = train_target_models(**given, transfer=transfer, runtime=runtime, strategy="coral")
    assert sorted(trained) == ["seed_0", "seed_1"]
