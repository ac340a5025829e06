"""The project's command line: Kedro's `run`, showing an error of the user's input as our message
alone (the traceback under `--verbose`, and always in logs/last_error.log); `suite`, the task suite
(headstart.suite); and `prune`, the retention of catalog versions (headstart.retention)."""

from __future__ import annotations

import importlib.resources
import traceback
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from headstart.user_errors import UnknownNameError, unknown_namespaces, unknown_pipelines, user_message

ERROR_LOG = Path("logs/last_error.log")


@click.group(name="headstart")
def cli() -> None:
    """headstart's project commands."""


def _run(verbose: bool, **options: Any) -> Any:
    return _reported(verbose, _run_named, **options)


def _run_named(**options: Any) -> Any:
    """Kedro's run; a pipeline or namespace it does not know (Kedro raises an ImportError or a
    ValueError deep in a traceback) answered with the names there are."""
    try:
        return kedro_run.callback(**options)
    except Exception as error:
        pipeline_names = [
            *(options.get("pipelines") or ()),
            *([options["pipeline"]] if options.get("pipeline") else []),
        ]
        message = _unknown_names(pipeline_names, list(options.get("namespaces") or ()))
        if message is None:
            raise
        raise UnknownNameError(message) from error


def _unknown_names(pipeline_names: list[str], namespaces: list[str]) -> str | None:
    """Our message for a name the project lacks; None when the run's error is another. The pipelines'
    names are their folders (as find_pipelines registers them), so a broken pipeline elsewhere hides nothing."""
    from kedro.framework.project import PACKAGE_NAME, pipelines

    folders = importlib.resources.files(f"{PACKAGE_NAME}.pipelines").iterdir()
    known = {folder.name for folder in folders if folder.is_dir() and not folder.name.startswith(("_", "."))}
    message = unknown_pipelines(known | {"__default__"}, pipeline_names)
    if message is not None or not namespaces:
        return message
    chosen = pipeline_names or ["__default__"]
    try:
        built = {name: pipelines[name] for name in chosen}  # built from the run's conf (ConfiguredParametersHook)
    except Exception:
        return None  # a pipeline that fails to build: the run's own error says so
    return unknown_namespaces(built, namespaces, default=not pipeline_names)


def _reported(verbose: bool, command: Any, *arguments: Any, **options: Any) -> Any:
    """`command`'s result; an error of the user's input as our message alone (the traceback in the log)."""
    try:
        return command(*arguments, **options)
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


@cli.command()
@click.option("--env", "-e", default=None, help="The Kedro environment (default: local).")
@click.option("--tasks", default=None, help="Comma-separated tasks of suite.tasks (default: suite.run, or all).")
@click.option("--rerun", is_flag=True, help="Train every task anew, even one that finished with the same parameters.")
@click.option(
    "--params",
    default="",
    callback=next(option for option in kedro_run.params if option.name == "params").callback,
    help="Parameters for every task's run and the suite's own, as `kedro run --params` takes them "
    "(e.g. suite.concurrent_tasks=3,runtime.workers=4).",
)
@click.option("--verbose", "-v", is_flag=True, help="On an error of your input, show the traceback too.")
def suite(env: str | None, tasks: str | None, rerun: bool, params: dict, verbose: bool) -> None:
    """The transfer comparison and the advice on every task of the suite, then the suite report and the
    advice's audit across tasks (data/08_reporting/suite_*; each task's versions in data/suite/<task>).
    Several tasks run at once on one shared pool of workers; a task that finished before with the same
    parameters is not trained again."""
    from kedro.framework.startup import bootstrap_project

    from headstart.suite import run_suite

    bootstrap_project(Path.cwd())
    chosen = [name.strip() for name in tasks.split(",")] if tasks else None
    reported, trained, report = _reported(verbose, run_suite, Path.cwd(), env, chosen, params or {}, rerun)
    click.echo(
        f"suite: {len(reported)} tasks ({', '.join(reported)}), {len(trained)} trained now; the report: {report}"
    )


@cli.command()
@click.option(
    "--keep-last", default=5, show_default=True, type=click.IntRange(min=1), help="Versions kept per data set."
)
@click.option("--delete", "really", is_flag=True, help="Delete them (without it, only list what would be deleted).")
@click.option("--env", "-e", default=None, help="The Kedro environment whose catalog to prune (default: local).")
def prune(keep_last: int, really: bool, env: str | None) -> None:
    """Delete all but the newest versions of each versioned data set (each `kedro suite` task's too),
    never a version that a registered model's lineage names (the champion's included)."""
    from headstart.retention import prune_project

    doomed = prune_project(Path.cwd(), env, keep_last, really)
    verb = "deleted" if really else "would delete"
    for version in doomed:
        click.echo(f"{verb}  {version.dataset}  {version.version}  {version.size_bytes / 1e6:.1f} MB")
    total = sum(v.size_bytes for v in doomed) / 1e6
    click.echo(
        f"{verb} {len(doomed)} versions, {total:.1f} MB; kept: the newest {keep_last} of each data set and every "
        "version a registered model's lineage names"
    )
    if doomed and not really:
        click.echo("run again with --delete to delete them")
