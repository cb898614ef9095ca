"""Project CLI: ``kedro run`` is Kedro's own command, with a runner that resumes killed runs by default.

Every option of ``kedro run`` stays as it is; only the default of ``--runner`` changes to
:class:`nemotron_cascade.journal.ResumableRunner` (``--runner SequentialRunner`` gives Kedro's
plain runner back). See :mod:`nemotron_cascade.journal` for what resuming means.

``run`` is also what the packaged project's entry points call (``nemotron-cascade`` and
``python -m nemotron_cascade``, see ``__main__.py``): Kedro's ``find_run_command`` looks it up here.
"""

from __future__ import annotations

import copy

import click
from kedro.framework.cli.project import run as kedro_run

DEFAULT_RUNNER = "nemotron_cascade.journal.ResumableRunner"


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


run = with_default_runner(kedro_run, DEFAULT_RUNNER)
cli.add_command(run, name="run")
