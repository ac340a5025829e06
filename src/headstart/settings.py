"""Kedro project settings."""

from __future__ import annotations

from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

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


def replacing_other_kinds(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with every entry that `override` gives another `kind` swapped for `override`'s, at any depth:
    an image folder written over the base's printed digits is a new data source, and the base's keys
    for printed digits would be refused on it. Entries of the same kind, or without one, merge as before."""
    replaced = dict(base)
    for key, new in override.items():
        old = base.get(key)
        if not (isinstance(old, dict) and isinstance(new, dict)):
            continue
        other_kind = "kind" in old and "kind" in new and old["kind"] != new["kind"]
        replaced[key] = new if other_kind else replacing_other_kinds(old, new)
    return replaced


class ConfigLoader(OmegaConfigLoader):
    """Kedro's loader, whose soft merge of parameters (an environment over the base, `--params` over
    both) replaces an entry of another `kind` rather than merging the keys of two kinds."""

    def _soft_merge(self, config: dict, env_config: dict, env_path: str | None = None) -> Any:
        return OmegaConfigLoader._soft_merge(replacing_other_kinds(config, env_config), env_config, env_path)

    def _merge_and_resolve(self, key: str, config_per_file: dict) -> dict[str, Any]:
        if key != "parameters" or not config_per_file or not self.runtime_params:
            return super()._merge_and_resolve(key, config_per_file)
        files = OmegaConf.to_container(OmegaConf.unsafe_merge(*config_per_file.values()), resolve=False)
        runtime = OmegaConf.to_container(OmegaConf.create(self.runtime_params), resolve=False)
        merged = OmegaConf.create(replacing_other_kinds(files, runtime))
        return super()._merge_and_resolve(key, {"merged": merged})


CONFIG_LOADER_CLASS = ConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge: an environment such as conf/test overrides single keys, keeping their siblings (an
    # entry of another `kind`, such as a data source, replaces the base's: ConfigLoader).
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
}
