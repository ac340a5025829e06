"""The project's Kedro context: typed parameters are checked before Kedro's own validation, so an
invalid field reads as one line naming it (`pretrain.training.epochs: Input should be ...`) rather than
pydantic's multi-line report with links, logged and then raised inside a traceback."""

from __future__ import annotations

from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.validation.type_extractor import TypeExtractor
from kedro.validation.utils import _MISSING, _unwrap_optional, is_pydantic_class, resolve_nested_dict_path
from pydantic import ValidationError

from headstart.user_errors import ParameterError, field_lines


class HeadstartContext(KedroContext):
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
