"""Project CLI: ``kedro run`` is Kedro's own command, with a runner that resumes killed runs by default.

Every option of ``kedro run`` stays as it is; only the default of ``--runner`` changes to
:class:`nemotron_cascade.journal.ResumableRunner` (``--runner SequentialRunner`` gives Kedro's
plain runner back). See :mod:`nemotron_cascade.journal` for what resuming means.

An interrupted run (Ctrl-C, SIGTERM) ends with one message, how to resume, and exit status 130
(128 + SIGINT, as a shell reports a command stopped by Ctrl-C) instead of click's bare "Aborted!".

``run`` is also what the packaged project's entry points call (``nemotron-cascade`` and
``python -m nemotron_cascade``, see ``__main__.py``): Kedro's ``find_run_command`` looks it up here.
"""

from __future__ import annotations

import copy
import functools

import click
from kedro.framework.cli.project import run as kedro_run

from nemotron_cascade.journal import RunInterrupted

DEFAULT_RUNNER = "nemotron_cascade.journal.ResumableRunner"
INTERRUPTED_EXIT_CODE = 130


@click.group(name="nemotron_cascade")
def cli() -> None:
    """Project-specific commands of nemotron-cascade."""


def with_default_runner(command: click.Command, runner: str) -> click.Command:
    """A copy of ``command`` whose ``--runner`` option defaults to ``runner`` (the original is untouched)."""
    command = copy.copy(command)
    command.params = [copy.copy(p) for p in command.params]
    for param in command.params:
        if param.name == "runner":
            param.default = runner
            param.help = f"{param.help} Default: {runner} (resumes a killed run with the same configuration)."
    return command


def reporting_interrupts(command: click.Command) -> click.Command:
    """A copy of ``command`` that ends an interrupted run with its message and exit status 130 (no traceback)."""
    command = copy.copy(command)
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except RunInterrupted as exc:
            click.echo(f"\n{exc}", err=True)
            raise click.exceptions.Exit(INTERRUPTED_EXIT_CODE) from None

    command.callback = run
    return command


run = reporting_interrupts(with_default_runner(kedro_run, DEFAULT_RUNNER))
cli.add_command(run, name="run")
