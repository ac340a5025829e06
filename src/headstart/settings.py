"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from headstart.context import HeadstartContext
from headstart.hooks import (
    ConfiguredParametersHook,
    GridProgressHook,
    MissingInputsHook,
    MlflowTrackingHook,
    OneWriterHook,
)

# Pluggy calls the last registered first: the run's conf is handed over before anything else.
# Pluggy calls the last registered first: missing inputs are found before an MLflow run opens.
# Under torchrun, ranks other than 0 swap their outputs for memory before anything else runs.
HOOKS = (MlflowTrackingHook(), GridProgressHook(), ConfiguredParametersHook(), MissingInputsHook(), OneWriterHook())

# kedro-mlflow crashes on MLflow 3.13+ and wraps versioned datasets badly; our hook replaces it.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)

# Invalid typed parameters read as one line per field (headstart.context).
CONTEXT_CLASS = HeadstartContext

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge: an environment such as conf/test overrides single keys, keeping their siblings.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}
