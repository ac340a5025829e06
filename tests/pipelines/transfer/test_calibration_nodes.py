"""The evaluation node fits each model's temperature and out-of-distribution thresholds on validation and
stores them with it (a network and a classical reference alike); the comparison's calibration summary."""

import pandas as pd
import pytest
from matplotlib.figure import Figure

from headstart.ml.calibration import COVERAGES
from headstart.ml.prediction import ImageClassifier, as_array
from headstart.params import RuntimeParams, TransferParams
from headstart.pipelines.transfer.nodes import (
    evaluate_target_models,
    gather_first_look,
    summarise_calibration,
    train_target_models,
)
from tests.pipelines.transfer.test_cost_nodes import TRANSFER, inputs


def test_every_strategys_models_are_stored_calibrated_and_tested_for_calibration_and_selective_prediction(tmp_path):
    names = ("scratch", "pixels_logistic", "pixels_knn")
    transfer = TransferParams.model_validate({**TRANSFER, "strategies": {n: TRANSFER["strategies"][n] for n in names}})
    runtime = RuntimeParams(progress=False, checkpoint_dir=str(tmp_path), workers=1)
    data = inputs()
    splits = {k: data[k] for k in ("target_train", "target_validation", "target_test")}
    evaluations = []
    for name in names:
        trained = train_target_models(
            data["source_model"], data["target_train"], data["target_validation"], transfer, runtime, strategy=name
        )
        kept, evaluation, runs = evaluate_target_models(
            trained, **splits, transfer=transfer, runtime=runtime, strategy=name
        )
        evaluations.append(evaluation)
        for stored in kept.values():  # what the catalog saves: a loaded model predicts calibrated and flags
            assert stored.info["temperature"] > 0 and set(stored.info["out_of_distribution"]["thresholds"]) == {
                "msp",
                "energy",
                "knn",
            }
            table = ImageClassifier(stored).predict([as_array(data["target_test"].images[0])])
            assert {"probability", "ood_score", "out_of_distribution"} <= set(table.columns)
        for seed, run in zip(evaluation["seeds"], runs, strict=True):
            assert 0 <= seed["ece"] <= 1 and 0 <= seed["ece_calibrated"] <= 1 and 0 <= seed["aurc"] <= 1
            assert seed["temperature"] == kept[f"seed_{seed['seed']}"].info["temperature"]
            assert len(seed["selective_accuracy"]) == len(COVERAGES)
            assert seed["selective_accuracy"][-1] == pytest.approx(seed["accuracy"])  # all answered
            assert {"test_ece", "test_ece_calibrated", "test_nll_calibrated", "test_aurc", "temperature"} <= set(
                run["metrics"]
            )
    table, reliability, risk_coverage = summarise_calibration(
        gather_first_look(*evaluations), {"later_seeds": {}}, transfer
    )
    assert isinstance(table, pd.DataFrame) and len(table) == len(names) * len(COVERAGES)
    assert set(table["seeds"]) == {2} and isinstance(reliability, Figure) and isinstance(risk_coverage, Figure)
