"""The code MLflow logs with every headstart model (models from code: nothing is pickled)."""

import mlflow

from headstart.serving import HeadstartImageClassifier

mlflow.models.set_model(HeadstartImageClassifier())
