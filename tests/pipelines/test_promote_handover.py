"""The champion hand-over, node and registry together (a local MLflow store): only a candidate
strictly better on the test split takes the alias; a worse or an equal one leaves it where it is."""

import mlflow
import pytest
import torch

from headstart.datasets.champion import ChampionModelDataset
from headstart.ml.data.images import LabelledImages
from headstart.pipelines.promote.nodes import choose_champion
from tests.pipelines.test_promote_nodes import knn_model

IMAGES = torch.randint(0, 255, (30, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
LABELS = torch.arange(30) % 3
TEST = LabelledImages(IMAGES, {"digit": LABELS}, {"digit": ["0", "1", "2"]})


def model_scoring(strategy: str, wrong: int):
    """A 1-nearest-neighbour model of the test images with `wrong` of them mislabelled: (30 - wrong) / 30."""
    labels = LABELS.clone()
    labels[:wrong] = (labels[:wrong] + 1) % 3
    model = knn_model(strategy, 0, IMAGES, labels, 0.9)
    model.info["classes"] = ["0", "1", "2"]
    return model


@pytest.fixture
def registry(tmp_path):
    """A local MLflow store holding a champion (version 1) that scores 20/30 on the test split."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("promote", (tmp_path / "artifacts").as_uri()))
    dataset = ChampionModelDataset("digits")
    with mlflow.start_run():
        decision, _ = choose_champion(TEST, dataset.load(), {"old": model_scoring("old", 10)})
        dataset.save(decision)
    yield dataset
    mlflow.set_tracking_uri(None)


def hand_over(dataset: ChampionModelDataset, wrong: int) -> tuple[dict, str]:
    """One promotion as the pipeline runs it: load the champion, judge the candidate, save the decision."""
    with mlflow.start_run():
        decision, report = choose_champion(TEST, dataset.load(), {"new": model_scoring("new", wrong)})
        dataset.save(decision)
    return report, str(mlflow.MlflowClient().get_registered_model("digits").aliases["champion"])


def test_a_strictly_better_candidate_takes_the_alias_and_the_report_says_why(registry):
    report, champion_version = hand_over(registry, wrong=5)
    assert report["promoted"] and str(report["champion_version"]) == "1"
    assert (report["candidate_accuracy"], report["champion_accuracy"]) == pytest.approx((25 / 30, 20 / 30))
    assert report["reason"] == "candidate 0.8333 beats champion 0.6667 on the same test split"
    assert champion_version == "2"
    champion = registry.load()
    assert str(champion["version"]) == "2" and champion["model"].info["strategy"] == "new"
    assert champion["tags"]["test_accuracy"] == "0.8333"


@pytest.mark.parametrize(("wrong", "accuracy"), [(15, "0.5000"), (10, "0.6667")], ids=["worse", "equal"])
def test_a_worse_or_equal_candidate_leaves_the_champion(registry, wrong, accuracy):
    report, champion_version = hand_over(registry, wrong)
    assert not report["promoted"] and report["champion_accuracy"] == pytest.approx(20 / 30)
    assert (report["candidate_accuracy"] == report["champion_accuracy"]) == (wrong == 10)  # equal: a true tie
    assert report["reason"] == f"candidate {accuracy} does not beat champion 0.6667; kept it"
    assert champion_version == "1"
    assert registry.load()["model"].info["strategy"] == "old"
    assert [str(v.version) for v in mlflow.MlflowClient().search_model_versions("name='digits'")] == ["1"]
