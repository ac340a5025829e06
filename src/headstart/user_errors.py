"""The errors a user fixes in their own conf or files, and how the command line shows them: our
message alone, one line per invalid field, no traceback (`kedro run --verbose` shows it, and
logs/last_error.log keeps it)."""

from __future__ import annotations

import re
from collections.abc import Iterator

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
