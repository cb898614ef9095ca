"""``nemotron-cascade`` and ``python -m nemotron_cascade`` run the project like ``kedro run``.

They take ``kedro run``'s options (``--env test --pipelines data_curation``, ``--params``, ...) and
its runner, the resuming :class:`~nemotron_cascade.journal.ResumableRunner`; a leading ``run`` is
accepted too (``nemotron-cascade run --env test``). Run them from the project directory: the
configuration is read from ``conf/`` there, as ``kedro run`` does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main(args: list[str] | None = None, **kwargs):
    """Entry point: configure the package and run its ``run`` command with ``args`` (default: the CLI's)."""
    package_name = Path(__file__).parent.name
    configure_project(package_name)
    args = list(sys.argv[1:] if args is None else args)
    if args[:1] == ["run"]:
        args = args[1:]
    run = find_run_command(package_name)
    return run(args, prog_name="nemotron-cascade", **kwargs)


if __name__ == "__main__":
    sys.exit(main())
