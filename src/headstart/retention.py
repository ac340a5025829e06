"""Retention of catalog versions: keep the newest N versions of each versioned data set, and every
version that a registered model's lineage names (its `data.<name>` tags, champion or not), so a
scheduled retraining does not fill the disk and a registered model can always be traced and rebuilt.
Lists what it would delete unless told to delete (`kedro prune --delete`)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import parse

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z$")  # Kedro's save-version format


@dataclass(frozen=True)
class StoredVersion:
    dataset: str  # the catalog name, e.g. finetune_full.target_models
    version: str
    path: Path
    size_bytes: int


def versioned_datasets(catalog: dict[str, Any], project_path: Path) -> dict[str, Path]:
    """Catalog name → folder of its versions, for every versioned local entry; factory entries
    (`{strategy}.target_models`) are matched against the folders that exist."""
    found: dict[str, Path] = {}
    for name, entry in catalog.items():
        if not isinstance(entry, dict) or not entry.get("versioned") or "filepath" not in entry:
            continue
        filepath = str(entry["filepath"])
        if "://" in filepath and not filepath.startswith("file://"):
            continue  # a remote store keeps its own retention
        filepath = filepath.removeprefix("file://")
        if "{" not in name:
            found.setdefault(name, project_path / filepath)
            continue
        pattern = parse.compile(filepath)
        for folder in sorted(project_path.glob(re.sub(r"\{[^}]*\}", "*", filepath))):
            fields = pattern.parse(str(folder.relative_to(project_path)))
            if fields is not None:
                found.setdefault(name.format(**fields.named), folder)
    return found


def registered_lineage() -> dict[str, set[str]]:
    """Catalog name → the versions some registered model version's lineage tags name."""
    client = mlflow.MlflowClient()
    kept: dict[str, set[str]] = {}
    for model in client.search_registered_models():
        for version in client.search_model_versions(f"name = '{model.name}'"):
            for key, value in version.tags.items():
                if key.startswith("data."):
                    kept.setdefault(key.removeprefix("data."), set()).add(value)
    return kept


def plan(datasets: dict[str, Path], keep_last: int, lineage: dict[str, set[str]]) -> list[StoredVersion]:
    """The versions to delete: all but the newest `keep_last` of each folder, less the lineage's.
    Two entries on one folder (e.g. source_model and catalogued_source_model) share their lineage."""
    by_folder: dict[Path, set[str]] = {}
    for name, folder in datasets.items():
        by_folder.setdefault(folder, set()).add(name)
    doomed = []
    for folder, names in sorted(by_folder.items()):
        if not folder.is_dir():
            continue
        versions = sorted(p.name for p in folder.iterdir() if p.is_dir() and VERSION.match(p.name))
        protected = set().union(*(lineage.get(name, set()) for name in names))
        for version in versions[: max(len(versions) - keep_last, 0)]:
            if version not in protected:
                path = folder / version
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                doomed.append(StoredVersion(min(names, key=len), version, path, size))
    return doomed


def delete(versions: list[StoredVersion]) -> None:
    for version in versions:
        shutil.rmtree(version.path)


def prune_project(project_path: Path, env: str | None, keep_last: int, really: bool) -> list[StoredVersion]:
    """The versions beyond retention in a project's catalog (its `env`) and in each suite task's folder,
    deleted when `really`."""
    from kedro.config import OmegaConfigLoader

    from headstart.orchestration import _project_mlflow_settings
    from headstart.settings import CONFIG_LOADER_ARGS
    from headstart.tracking import configure_mlflow

    project_path = Path(project_path)

    def loader(stored_data: str | None = None) -> OmegaConfigLoader:
        runtime = {"stored_data": stored_data} if stored_data else None
        return OmegaConfigLoader(str(project_path / "conf"), env=env, runtime_params=runtime, **CONFIG_LOADER_ARGS)

    configure_mlflow(_project_mlflow_settings(project_path, env or "local"), project_path)
    default = loader()
    datasets = versioned_datasets(default["catalog"], project_path)
    # `kedro suite` keeps each task's versions in <stored_data>/suite/<task>: every task folder on disk,
    # named suite.<task>.<data set>, in conf or not any more
    stored_data = default["globals"]["stored_data"]
    for task in sorted(p.name for p in (project_path / stored_data / "suite").glob("*") if p.is_dir()):
        catalog = loader(f"{stored_data}/suite/{task}")["catalog"]
        datasets |= {
            f"suite.{task}.{name}": folder for name, folder in versioned_datasets(catalog, project_path).items()
        }
    doomed = plan(datasets, keep_last, registered_lineage())
    if really:
        delete(doomed)
    return doomed
