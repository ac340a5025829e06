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
_loaded: dict[str, Any] | None = None  # the loader's parameters, read once: each read re-merges every file
_project_path: Path | None = None


def use(config_loader: Any, project_path: str | Path | None = None) -> None:
    global _loader, _loaded, _project_path
    if config_loader is not _loader:
        _loader, _loaded = config_loader, None
    if project_path is not None:
        _project_path = Path(project_path)


def project_root() -> Path:
    """The project this run belongs to (Kedro's project path; else $HEADSTART_PROJECT_PATH, else cwd)."""
    return _project_path or Path(os.environ.get("HEADSTART_PROJECT_PATH") or Path.cwd())


def resolve(path: str | None) -> str | None:
    """A path from conf: relative ones are taken from the project root, as the catalog's are, so a run
    started elsewhere (an Airflow worker) reads and writes the same files."""
    if path is None or Path(path).is_absolute() or "://" in path:
        return path
    return str(project_root() / path)


def parameters() -> dict[str, Any]:
    """The run's raw parameters (validation against the typed models happens when nodes get them).

    Read once per loader: building the pipelines asks for them once per strategy, and Kedro's loader
    merges and resolves every file again on each read (0.7 s each, minutes a run)."""
    global _loaded
    if _loader is None:
        from kedro.framework.project import settings

        project = project_root()
        use(
            settings.CONFIG_LOADER_CLASS(
                conf_source=str(project / settings.CONF_SOURCE),
                env=os.environ.get("KEDRO_ENV"),
                **settings.CONFIG_LOADER_ARGS,
            )
        )
    if _loaded is None:
        _loaded = dict(_loader["parameters"])
    return _loaded


def names(section: str, key: str) -> list[str]:
    """The entry names of `<section>.<key>` in conf, in order, e.g. names("transfer", "strategies")."""
    entries = parameters().get(section, {}).get(key) or {}
    return list(entries)
