"""The MLflow model we log: loaded by mlflow.pyfunc, it predicts what our own classifier predicts."""

import mlflow
import numpy as np

from headstart.ml.prediction import ImageClassifier
from headstart.serving import image_frame, log_image_classifier
from tests.ml.test_prediction import stored_model


def test_logged_model_loads_through_pyfunc_and_predicts_like_the_library(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serving", (tmp_path / "artifacts").as_uri()))
    stored = stored_model()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (20, 30), dtype=np.uint8), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)]
    with mlflow.start_run():
        logged = log_image_classifier(stored, "model", images[0], registered_model_name="served")
    assert logged.signature.inputs.input_names() == ["image"]
    assert "probability_c" in logged.signature.outputs.input_names()
    loaded = mlflow.pyfunc.load_model("models:/served/1")
    served = loaded.predict(image_frame(images))
    direct = ImageClassifier(stored).predict(images)
    assert list(served["predicted_class"]) == list(direct["predicted_class"])
    np.testing.assert_allclose(served["probability"], direct["probability"], rtol=1e-6)
    files = (
        [path.name for path in (tmp_path / "mlruns").rglob("*") if path.is_file()]
        if (tmp_path / "mlruns").exists()
        else []
    )
    assert not any(name.endswith((".pkl", ".pickle")) for name in files)
