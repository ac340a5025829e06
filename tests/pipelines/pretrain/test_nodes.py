import pytest
import safetensors.torch
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.errors import InvalidDataError
from headstart.params import PretrainParams, RuntimeParams
from headstart.pipelines.pretrain.nodes import prepare_source_model
from tests.ml.test_transfer import toy_data


def labelled(n=48):
    images, labels = toy_data(n)
    return LabelledImages(images=images, labels={"digit": labels}, classes={"digit": ["a", "b", "c"]})


def params(**overrides):
    settings = {"architecture": {"widths": [4, 8]}, "training": {"epochs": 2, "batch_size": 16}, **overrides}
    return PretrainParams.model_validate(settings)


@pytest.fixture
def runtime(tmp_path):
    return RuntimeParams(progress=False, checkpoint_dir=str(tmp_path / "checkpoints"))


def test_a_catalogued_model_of_the_same_data_and_params_is_reused_unless_retrain(runtime):
    data = labelled()
    trained, summary, runs = prepare_source_model(data, data, None, params(), runtime)
    assert summary["reused"] == 0 and summary["epochs_trained"] == 2 and len(runs[0]["history"]) == 2
    reused, summary, runs = prepare_source_model(data, data, trained, params(), runtime)
    assert reused["source"] is trained["source"] and summary["reused"] == 1 and runs == []
    retrained, summary, _ = prepare_source_model(data, data, trained, params(retrain=True), runtime)
    assert summary["reused"] == 0 and retrained["source"] is not trained["source"]
    other_data = labelled(60)
    _, summary, _ = prepare_source_model(other_data, other_data, trained, params(), runtime)
    assert summary["reused"] == 0


def test_a_local_checkpoint_is_loaded_with_its_class_count_and_grey_input(tmp_path, runtime):
    state = {k: v.contiguous() for k, v in torch.nn.Linear(1, 1).state_dict().items()}
    data = labelled()
    trained, _, _ = prepare_source_model(data, data, None, params(), runtime)
    safetensors.torch.save_file(trained["source"].state, tmp_path / "source.safetensors")
    loaded, summary, _ = prepare_source_model(
        data, data, None, params(init="checkpoint", checkpoint=str(tmp_path / "source.safetensors")), runtime
    )
    assert summary["loaded"] == 1 and loaded["source"].config["num_classes"] == 3
    assert torch.equal(loaded["source"].state["blocks.0.0.weight"], trained["source"].state["blocks.0.0.weight"])
    safetensors.torch.save_file(state, tmp_path / "linear.safetensors")
    with pytest.raises(InvalidDataError, match="checkpoint has no output layer"):
        prepare_source_model(
            data, data, None, params(init="checkpoint", checkpoint=str(tmp_path / "linear.safetensors")), runtime
        )


def test_loading_needs_the_weights_it_names():
    with pytest.raises(ValueError, match="init: torchvision_weights needs `weights`"):
        params(init="torchvision_weights")
    with pytest.raises(ValueError, match="widths applies to small_cnn only"):
        PretrainParams.model_validate({"architecture": {"name": "resnet18", "widths": [4]}})
