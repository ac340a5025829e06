"""End to end with what a practitioner brings: a photo folder and a torchvision resnet18 or a timm ViT
from a local weights file, through ingest → pretrain (loaded from the file) → every strategy → advise."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import timm
import torch
import torchvision
import yaml
from PIL import Image

from tests.conftest import copy_project, kedro_run

pytestmark = pytest.mark.slow
CLASSES = ("cat", "dog", "owl")
# One strategy of each procedure and of each way a strategy reads the backbone (frozen features, a
# frozen prefix, a probe, source anchors, source images through forward_features), the baselines required.
STRATEGIES = ["scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top", "lp_ft", "l2_sp", "coral"]


def write_photos(root: Path, per_class: int, seed: int) -> None:
    """RGB photos of 40 px whose class is a colour cast and a stripe direction, with noise."""
    generator = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            image = generator.uniform(0, 60, (40, 40, 3))
            image[..., label] += 120
            stripes = (np.arange(40) // 5 % 2 == 0) * 60.0
            image += stripes[:, None, None] if label % 2 else stripes[None, :, None]
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / name / f"{index}.png")


def write_weights(library: str, name: str, folder: Path) -> Path:
    """The library's own weights file, as a user downloads it (here: its seeded random initialisation)."""
    torch.manual_seed(0)
    if library == "timm":
        path = folder / f"{name}.safetensors"
        safetensors.torch.save_file(timm.create_model(name, pretrained=False, img_size=32).state_dict(), path)
    else:
        path = folder / f"{name}.pth"
        torch.save(torchvision.models.get_model(name, weights=None).state_dict(), path)
    return path


def rewrite(path: Path, section: str, **changes) -> None:
    conf = yaml.safe_load(path.read_text()) or {}
    conf.setdefault(section, {}).update(changes)
    path.write_text(yaml.safe_dump(conf, sort_keys=False))


def latest(project: Path, relative: str) -> Path:
    return sorted((project / relative).glob(f"*/{Path(relative).name}"))[-1]


@pytest.mark.parametrize(("library", "name"), [("torchvision", "resnet18"), ("timm", "vit_tiny_patch16_224")])
def test_a_local_backbone_file_and_a_photo_folder_run_every_strategy_and_advise(tmp_path, library, name):
    project = copy_project(tmp_path)
    write_photos(project / "data/01_raw/source", per_class=12, seed=1)
    write_photos(project / "data/01_raw/target", per_class=14, seed=2)
    weights = write_weights(library, name, project / "data/01_raw")
    # A user edits the conf; the base's data source and test architecture are replaced, not merged.
    rewrite(
        project / "conf/base/parameters_ingest.yml",
        "ingest",
        image={"size": 40, "channels": 3},
        source={"kind": "image_folder", "root": "data/01_raw/source", "stream": True},  # decoded per batch
        target={"kind": "image_folder", "root": "data/01_raw/target"},
    )
    (project / "conf/test/parameters_ingest.yml").write_text("ingest: {split: {labels_per_class: 2}}\n")
    pretrain = {
        "init": "checkpoint",
        "checkpoint": str(weights.relative_to(project)),
        "architecture": {"library": library, "name": name, "input_size": 32},
    }
    (project / "conf/test/parameters_pretrain.yml").write_text(yaml.safe_dump({"pretrain": pretrain}))
    for environment in ("base", "test"):
        path = project / f"conf/{environment}/parameters_transfer.yml"
        transfer = yaml.safe_load(path.read_text())
        strategies = {s: transfer["transfer"]["strategies"].get(s) or {} for s in STRATEGIES}
        if environment == "test":  # one candidate, one epoch: the paths matter here, not the training
            strategies = {s: {**spec, "lr_scales": [1.0]} for s, spec in strategies.items() if s != "scratch"}
            strategies = {"scratch": {"training": {"epochs": 1}}, **strategies}
            strategies = {
                s: {**spec, "training": {"epochs": 1}} if "training" in spec else spec for s, spec in strategies.items()
            }
        transfer["transfer"].update(seeds=[0], strategies=strategies, leave_out=[])
        path.write_text(yaml.safe_dump(transfer, sort_keys=False))
    advise = yaml.safe_load((project / "conf/base/parameters_advise.yml").read_text())
    advise["advise"].update(candidates={"loaded": {"init": "pretrained"}, "random_init": {"init": "random"}})
    (project / "conf/base/parameters_advise.yml").write_text(yaml.safe_dump(advise, sort_keys=False))

    result = kedro_run(project, "--pipelines=ingest,pretrain,transfer,advise")
    assert result.returncode == 0, result.stderr[-3000:]

    comparison = pd.read_csv(latest(project, "data/08_reporting/transfer_comparison.csv")).set_index("strategy")
    assert sorted(comparison.index) == sorted(STRATEGIES)
    assert comparison["accuracy"].between(0, 1).all() and (comparison["seeds"] == 1).all()
    full, top = (
        comparison.loc["l2_sp", "trainable_parameters"],
        comparison.loc["finetune_top", "trainable_parameters"],
    )
    assert comparison.loc["feature_svm", "trainable_parameters"] < top < full
    stored = yaml.safe_load(latest(project, "data/06_models/source_model").joinpath("source.json").read_text())
    assert stored["config"]["name"] == name and stored["info"]["origin"].endswith(weights.name)
    advice = yaml.safe_load(latest(project, "data/08_reporting/advice.json").read_text())
    assert sorted(advice["ranking"]) == ["loaded", "random_init"]
    assert 0 <= advice["prior_freeze_blocks"] <= advice["total_blocks"] == (5 if library == "torchvision" else 13)
    # the raced winner's depth, or none when a baseline won (transfer will not pay)
    assert advice["freeze_blocks"] is None or 0 <= advice["freeze_blocks"] <= advice["total_blocks"]
    assert advice["transfers"] == (advice["freeze_blocks"] is not None)
