"""The project's command line: Kedro's `run`, showing an error of the user's input as our message
alone (the traceback under `--verbose`, and always in logs/last_error.log), and `prune`."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from headstart.user_errors import user_message

ERROR_LOG = Path("logs/last_error.log")


@click.group(name="headstart")
def cli() -> None:
    """headstart's project commands."""


def _run(verbose: bool, **options: Any) -> Any:
    try:
        return kedro_run.callback(**options)
    except click.ClickException:
        raise
    except Exception as error:
        message = user_message(error)
        if message is None or verbose:
            raise
        ERROR_LOG.parent.mkdir(parents=True, exist_ok=True)
        ERROR_LOG.write_text("".join(traceback.format_exception(error)))
        raise click.ClickException(f"{message}\n(the traceback: {ERROR_LOG}, or run again with --verbose)") from error


run = click.Command(
    name="run",
    callback=_run,
    params=[
        *kedro_run.params,
        click.Option(["--verbose", "-v"], is_flag=True, help="On an error of your input, show the traceback too."),
    ],
    help=kedro_run.help,
)
cli.add_command(run)
