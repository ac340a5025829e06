"""The parameters of this run, for pipelines whose shape comes from conf (one namespace per strategy).

Kedro builds pipelines after the session's context exists, so `ConfiguredParametersHook` hands over
the run's own config loader (its `--env` and `--params` included). Commands that build pipelines
without a run (kedro-airflow's `create`, Kedro-Viz) get the project's conf: base + local, or
$KEDRO_ENV, read the way settings.py configures the loader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_loader: Any = None


def use(config_loader: Any) -> None:
    global _loader
    _loader = config_loader


def parameters() -> dict[str, Any]:
    """The run's raw parameters (validation against the typed models happens when nodes get them)."""
    if _loader is None:
        from kedro.framework.project import settings

        project = Path(os.environ.get("HEADSTART_PROJECT_PATH") or Path.cwd())
        use(
            settings.CONFIG_LOADER_CLASS(
                conf_source=str(project / settings.CONF_SOURCE),
                env=os.environ.get("KEDRO_ENV"),
                **settings.CONFIG_LOADER_ARGS,
            )
        )
    return dict(_loader["parameters"])


def names(section: str, key: str) -> list[str]:
    """The entry names of `<section>.<key>` in conf, in order, e.g. names("transfer", "strategies")."""
    entries = parameters().get(section, {}).get(key) or {}
    return list(entries)
