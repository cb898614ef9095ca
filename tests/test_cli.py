"""The packaged project's entry points (``nemotron-cascade``, ``python -m nemotron_cascade``) run
the cascade as ``kedro run`` does: same options, same resuming runner, from the installed package."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import find_run_command

from nemotron_cascade import cli

BIN = Path(sys.executable).parent


def test_the_run_command_is_kedro_run_with_the_resuming_runner_as_default():
    run = find_run_command("nemotron_cascade")  # what Kedro's packaged entry point calls
    assert run is cli.run and cli.cli.commands["run"] is cli.run  # `kedro run` gets the same command
    assert [p.name for p in run.params] == [p.name for p in kedro_run.params]
    (runner,) = [p for p in run.params if p.name == "runner"]
    assert runner.default == "nemotron_cascade.journal.ResumableRunner"
    assert next(p for p in kedro_run.params if p.name == "runner").default != runner.default  # kedro's untouched


def test_the_console_script_shows_kedro_runs_options():
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([str(BIN / "nemotron-cascade"), "--help"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())
    assert "Usage: nemotron-cascade [OPTIONS]" in out and "--pipelines" in out and "--env" in out
    assert "ResumableRunner" in out


@pytest.mark.slow
def test_python_dash_m_runs_a_pipeline_of_the_project(tmp_path_factory, make_project):
    project = make_project(tmp_path_factory.mktemp("entry_point"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "2", "COLUMNS": "2000"}
    proc = subprocess.run([sys.executable, "-m", "nemotron_cascade", "run", "--env", "test",
                           "--pipelines", "data_curation"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (project / "data/05_model_input/sft_blend_stage2.jsonl").stat().st_size > 0
    assert (project / "mlflow.db").exists()  # the project's hooks ran (settings.py was configured)


def test_an_interrupted_run_ends_with_one_message_and_status_130():
    """Ctrl-C printed click's bare "Aborted!" (exit 1); now the run's own message, how to resume."""
    import click
    from click.testing import CliRunner

    from nemotron_cascade.journal import RunInterrupted

    @click.command()
    def stopped():
        raise RunInterrupted("run interrupted by SIGINT (Ctrl-C) with 2 nodes done; rerun the same command to resume")

    result = CliRunner().invoke(cli.reporting_interrupts(stopped), [])
    assert result.exit_code == cli.INTERRUPTED_EXIT_CODE == 130
    assert "rerun the same command to resume" in result.stderr and "Aborted" not in result.output
    assert cli.run.callback is not kedro_run.callback  # the project's run command reports interrupts
