"""The project's Kedro context: typed parameters are checked before Kedro's own validation, so an
invalid field reads as one line naming it (`pretrain.training.epochs: Input should be ...`) rather than
pydantic's multi-line report with links, logged and then raised inside a traceback; and each run of
the project saves under a version no other run of it took."""

from __future__ import annotations

import fcntl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.io import DataCatalog
from kedro.io.core import VERSION_FORMAT
from kedro.validation.type_extractor import TypeExtractor
from kedro.validation.utils import _MISSING, _unwrap_optional, is_pydantic_class, resolve_nested_dict_path
from pydantic import ValidationError

from headstart.user_errors import ParameterError, field_lines

LAST_SAVE_VERSION = "data/.last_save_version"  # the newest save version a run of this project took


def unique_save_version(project_path: Path, proposed: str) -> str:
    """`proposed` (Kedro's session timestamp, to the millisecond), or the millisecond after the newest
    version any run of this project took, if `proposed` is not newer. Two runs started in the same
    millisecond would otherwise share a save version, and the second to save would fail after all its
    training. A file lock makes the check and the record one step across processes."""
    path = Path(project_path) / LAST_SAVE_VERSION
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as record:
        fcntl.flock(record, fcntl.LOCK_EX)  # released when the file closes
        record.seek(0)
        try:
            last = datetime.strptime(record.read().strip(), VERSION_FORMAT)
        except ValueError:  # none yet, or not a version (then it is rewritten)
            last = None
        version = proposed
        if last is not None and version <= last.strftime(VERSION_FORMAT)[:-4] + "Z":
            later = (last + timedelta(milliseconds=1)).strftime(VERSION_FORMAT)
            version = later[:-4] + later[-1:]  # milliseconds, as Kedro writes them
        record.seek(0)
        record.truncate()
        record.write(version)
    return version


class HeadstartContext(KedroContext):
    def _get_catalog(
        self, catalog_class: type = DataCatalog, save_version: str | None = None, load_versions: dict | None = None
    ) -> Any:
        if save_version is not None:
            save_version = unique_save_version(self.project_path, save_version)
        return super()._get_catalog(catalog_class, save_version, load_versions)

    def _get_validated_params(self) -> dict[str, Any]:
        self._check_typed_parameters()
        return super()._get_validated_params()

    def _check_typed_parameters(self) -> None:
        from kedro.framework.project import pipelines

        try:
            raw = self.config_loader["parameters"]
        except MissingConfigException:
            return  # Kedro's own warning says so
        names = self._pipelines_to_validate
        chosen = dict(pipelines) if names is None else {name: pipelines[name] for name in names if name in pipelines}
        lines = []
        for key, kind in TypeExtractor(chosen).extract_types_from_pipelines().items():
            value, kind = resolve_nested_dict_path(raw, key), _unwrap_optional(kind)
            if value is _MISSING or value is None or not is_pydantic_class(kind):
                continue  # Kedro's own check reports a None where a value is needed
            try:
                kind.model_validate(value)
            except ValidationError as error:
                lines += field_lines(key, error)
        if lines:
            raise ParameterError("invalid parameters:\n  " + "\n  ".join(lines))
