"""The errors a user fixes in their own conf or files, and how the command line shows them: our
message alone, one line per invalid field, no traceback (`kedro run --verbose` shows it, and
logs/last_error.log keeps it)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import click
from kedro.io import DatasetError
from pydantic import ValidationError

from headstart.ml.errors import CostLimitError, InvalidDataError
from headstart.ml.models.loading import WeightsUnavailableError
from headstart.ml.transfer import CheckpointMismatchError

# Raised for input the user provides (data, weights, conf), each with a message naming what is at fault.
USER_ERRORS = (InvalidDataError, WeightsUnavailableError, CheckpointMismatchError, DatasetError, CostLimitError)


class ParameterError(click.ClickException):
    """Parameters that fail their typed check, one line per field, before any node runs."""


class UnknownNameError(click.ClickException):
    """A pipeline or namespace the project lacks (a typo, mostly), answered with the names there are."""


def _prefixes(namespace: str) -> list[str]:
    parts = namespace.split(".")
    return [".".join(parts[: end + 1]) for end in range(len(parts))]


def _unknown(what: str, missing: Sequence[str], there: Sequence[str], where: str) -> str:
    named = []
    for name in missing:
        close = difflib.get_close_matches(name, there, 1)
        named.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    plural = "s" if len(missing) > 1 else ""
    return f"unknown {what}{plural} {', '.join(named)}; the {what}s {where}: {', '.join(there) or 'none'}"


def unknown_pipelines(known: Iterable[str], pipeline_names: Sequence[str]) -> str | None:
    """The pipelines a run named that the project lacks, with those there are; None when all exist."""
    known = set(known)
    missing = [name for name in pipeline_names if name not in known]
    there = sorted(name for name in known if name != "__default__")
    return _unknown("pipeline", missing, there, "there are") if missing else None


def unknown_namespaces(pipelines: Mapping[str, Any], namespaces: Sequence[str], default: bool) -> str | None:
    """The namespaces a run named that its `pipelines` lack (a namespace also selects those nested in it,
    as Kedro's filter does), with those there are; None when all exist."""
    there = sorted(
        {
            prefix
            for pipeline in pipelines.values()
            for node in pipeline.nodes
            if node.namespace
            for prefix in _prefixes(node.namespace)
        }
    )
    missing = [namespace for namespace in namespaces if namespace not in there]
    if not missing:
        return None
    return _unknown(
        "namespace", missing, there, "of the default run" if default else f"of --pipelines={','.join(pipelines)}"
    )


# How pydantic names the member of a union (`int | Literal["all"]`) that a value failed, in an error's location.
UNION_MEMBER = re.compile(r"^(int|str|float|bool|none|list\[.*|dict\[.*|.*[-\[(].*)$")


def field_lines(prefix: str, error: ValidationError) -> list[str]:
    """`<parameter>.<field>: <what is wrong> (got <value>)`, one per failing field (a union's members
    joined by "or"), without pydantic's links."""
    fields: dict[str, tuple[list[str], str]] = {}
    for failure in error.errors(include_url=False):
        parts = [str(part) for part in failure["loc"] if not UNION_MEMBER.match(str(part))]
        where = ".".join(part for part in (prefix, *parts) if part)
        got = failure.get("input")  # a scalar the user typed; our own value errors already quote it
        scalar = isinstance(got, str | int | float | bool) and failure["type"] != "value_error"
        messages, shown = fields.setdefault(where, ([], f" (got {got!r})" if scalar else ""))
        messages.append(failure["msg"].removeprefix("Value error, "))
    return [f"{where}: {' or '.join(dict.fromkeys(messages))}{shown}" for where, (messages, shown) in fields.items()]


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def user_message(error: BaseException) -> str | None:
    """The message of the first user error in `error`'s chain (outermost first), or None: a fault of ours."""
    for link in _chain(error):
        if isinstance(link, ValidationError):
            return "invalid parameters:\n  " + "\n  ".join(field_lines("", link))
        if isinstance(link, USER_ERRORS):
            return str(link)
    return None
