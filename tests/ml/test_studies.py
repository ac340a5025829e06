import pandas as pd
import pytest

from headstart.ml.studies import labels_saved, layer_sweep_spec


def curve_rows(strategy, accuracies):
    budgets = [("1", 1.0), ("5", 5.0), ("20", 20.0), ("all", 100.6)]
    return [
        {"strategy": strategy, "labels_per_class": label, "k": k, "seed": seed, "accuracy": accuracy + offset}
        for (label, k), accuracy in zip(budgets, accuracies)
        for seed, offset in ((0, -0.01), (1, 0.01))
    ]


def test_labels_saved_reads_the_smallest_baseline_budget_that_matches():
    curve = pd.DataFrame(curve_rows("scratch", [0.30, 0.70, 0.90, 0.95]) + curve_rows("transfer", [0.70, 0.92, 0.96, 0.97]))
    saved = labels_saved(curve).set_index("labels_per_class")
    assert saved.loc["1", "scratch_matches_at"] == "5" and saved.loc["1", "labels_saved_per_class"] == 4.0
    assert saved.loc["5", "scratch_matches_at"] == "all" and saved.loc["5", "labels_saved_per_class"] == pytest.approx(95.6)
    assert saved.loc["20", "scratch_matches_at"] == "not reached"
    assert saved.loc["20", "labels_saved_per_class"] == "not reached"


def test_layer_sweep_arms_copy_and_freeze_as_yosinski_describes():
    assert layer_sweep_spec("copied_frozen", 2).copy_blocks == 2 and layer_sweep_spec("copied_frozen", 2).freeze_blocks == 2
    assert layer_sweep_spec("copied_finetuned", 2).freeze_blocks == 0
    control = layer_sweep_spec("random_frozen", 2)
    assert control.copy_blocks == 0 and control.freeze_blocks == 2
    with pytest.raises(ValueError, match="unknown layer-sweep arm 'both'"):
        layer_sweep_spec("both", 1)
