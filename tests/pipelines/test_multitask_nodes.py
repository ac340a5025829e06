import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.params import MultitaskParams, RuntimeParams
from headstart.pipelines.multitask.nodes import train_multitask_methods
from tests.ml.test_multitask import two_task_data


def test_a_trunk_from_the_source_model_starts_from_its_body(tmp_path):
    images, labels = two_task_data(24)
    data = LabelledImages(images=images, labels=labels, classes={"left": ["a", "b", "c"], "right": ["a", "b", "c"]})
    source_config = {"name": "small_cnn", "in_channels": 1, "num_classes": 10, "widths": [4, 8]}
    torch.manual_seed(3)
    source = StoredModel.from_module(build_model(source_config), source_config)
    params = MultitaskParams.model_validate(
        {
            "data": {"kind": "multi_digits"},
            "trunk": {"init": "source"},
            "methods": {"single": {"sharing": "single_task"}, "soft": {"sharing": "soft", "penalty": 0.1}},
            "seeds": [0],
            "training": {"epochs": 1, "body_lr": 1e-12, "head_lr": 1e-3, "weight_decay": 0.0},
        }
    )
    models = train_multitask_methods(
        data, data, {"source": source}, params, RuntimeParams(progress=False, checkpoint_dir=str(tmp_path))
    )
    assert sorted(models) == ["single-seed0-left", "single-seed0-right", "soft-seed0-all"]
    trunk = models["single-seed0-left"].state["trunk.blocks.0.0.weight"]
    torch.testing.assert_close(trunk, source.state["blocks.0.0.weight"], atol=1e-6, rtol=0)  # body barely trained
    torch.testing.assert_close(
        models["soft-seed0-all"].state["networks.right.blocks.1.0.weight"],
        source.state["blocks.1.0.weight"],
        atol=1e-6,
        rtol=0,
    )
