"""A timm champion served where nothing but its own requirements are installed.

Logs a timm ResNet-18 classifier as headstart serves a champion (headstart.serving: safetensors weights,
the headstart package as code, a requirements.txt pinned as pyproject.toml pins the project), builds a
fresh virtual environment from that requirements.txt alone (plus pyarrow, to read this script's input
file), loads the model there through `mlflow.pyfunc` and checks that it answers what the library answers
here. Prints the served table and "SAME ANSWERS".

    .venv/bin/python benchmarks/served_env.py            # the fresh environment: minutes, some 6 GB
    .venv/bin/python benchmarks/served_env.py --smoke    # the same check in this environment: seconds

The full run took 2 min 23 s on 2026-12-07 on this project's 2-core CPU (commit `2358d0a`, pip's
cache warm, torch from the local disk; 6.3 GB of environment) and printed SAME ANSWERS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np
import torch

from headstart.ml.models import build_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.prediction import ImageClassifier
from headstart.serving import image_frame, log_image_classifier

SERVE = """
import sys
from pathlib import Path
import mlflow, numpy as np, pandas as pd
folder = Path(sys.argv[1])
served = mlflow.pyfunc.load_model(str(folder / "model")).predict(pd.read_parquet(folder / "input.parquet"))
expected = pd.read_json(folder / "expected.json")
print(served.to_string())
assert list(served["predicted_class"]) == list(expected["predicted_class"])
np.testing.assert_allclose(served["probability"], expected["probability"], rtol=1e-5)
print("SAME ANSWERS")
"""


def log_champion(folder: Path) -> Path:
    """A timm champion logged by headstart's serving code; its input and the library's answer beside it."""
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("served_env", (folder / "artifacts").as_uri()))
    config = {"library": "timm", "name": "resnet18", "in_channels": 1, "num_classes": 3, "input_size": 32}
    torch.manual_seed(0)
    stored = StoredModel.from_module(build_model(config), config, {"classes": ["a", "b", "c"], "image_size": 32})
    images = [np.random.default_rng(seed).integers(0, 256, (40, 40), dtype=np.uint8) for seed in range(3)]
    with mlflow.start_run():
        logged = log_image_classifier(stored, "model", images[0])
    model = Path(url2pathname(urlparse(mlflow.get_logged_model(logged.model_id).artifact_location).path))
    (folder / "model").symlink_to(model)
    image_frame(images).to_parquet(folder / "input.parquet")
    ImageClassifier(stored).predict(images).to_json(folder / "expected.json")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="serve in this environment (no fresh one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="headstart-served-env-") as scratch:
        folder = Path(scratch)
        model = log_champion(folder)
        print((model / "requirements.txt").read_text())
        python = Path(sys.executable)
        if not args.smoke:
            subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
            python = folder / "venv" / "bin" / "python"
            install = [str(python), "-m", "pip", "install", "-q", "-r", str(model / "requirements.txt"), "pyarrow"]
            subprocess.run(install, check=True)
        served = subprocess.run([str(python), "-c", SERVE, str(folder)], capture_output=True, text=True)
        print(served.stdout)
        if served.returncode != 0:
            sys.exit(served.stderr[-3000:])


if __name__ == "__main__":
    main()
