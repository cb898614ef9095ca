"""What a refused, interrupted or store-less ``kedro run`` leaves behind (issue #27: 1, 2, 3, 8, 10).

End to end, on real ``kedro run --env test`` processes:

* a fresh clone whose upstream never ran is refused with the missing datasets, and leaves no lock
  and no journal behind, even where a killed run's lock file names a pid that is alive again (3);
* Ctrl-C (SIGINT to the process group, as a terminal sends it) in the middle of ``sft.stage1``'s
  training ends with one message, how to resume, and exit status 130; the stage's run and the parent
  are KILLED in MLflow, the journal stays, the lock goes (2, 3, 10);
* the MLflow store is then deleted: rerunning the same command resumes the training state (the
  finished nodes skipped, the stage from its mid-stage checkpoint) into new MLflow runs, and says so (1).

The unit-level cases (a hook failing in ``on_pipeline_error``, SIGTERM, Kedro's ``--from-nodes``
hint, the pinned versions in the journal key) are in tests/tracking/test_journal.py and test_runs.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUNS = Path("data/09_tracking/runs")
# sft.stage1 long enough to be interrupted mid-stage (its resume state is saved every 6 steps)
LONG_STAGE1 = ("--pipelines", "sft", "--params", "sft.stage1.train.max_steps=60")
RESUME_HINT = "rerun the same command to resume"


def _kedro(project: Path, *args: str) -> subprocess.Popen:
    """Start ``kedro run --env test *args`` in ``project``; its output goes to a file (a pipe nobody
    reads while the test polls would fill up and stall it)."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "COLUMNS": "2000"}
    log = open(project / f"kedro-{time.monotonic_ns()}.log", "w+")  # closed by _finish
    proc = subprocess.Popen([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test", *args],
                            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as a terminal's foreground job
    proc.log = log
    return proc


def _finish(proc: subprocess.Popen, timeout: int = 600) -> tuple[int, str]:
    """Wait for ``proc``; its exit status and output."""
    proc.wait(timeout=timeout)
    with proc.log as log:
        log.seek(0)
        return proc.returncode, log.read()


def _runs(project: Path) -> list[str]:
    return sorted(p.name for p in (project / RUNS).iterdir()) if (project / RUNS).exists() else []


def _client(project: Path):
    """A client on a copy of the project's MLflow store, and its runs. A copy: MLflow caches a store
    per URI, and the cached one would go on reading a deleted ``mlflow.db``."""
    import shutil

    import mlflow

    snapshot = project.parent / f"{project.name}-mlflow-{time.monotonic_ns()}.db"
    shutil.copy(project / "mlflow.db", snapshot)
    client = mlflow.MlflowClient(f"sqlite:///{snapshot}")
    experiment = client.get_experiment_by_name("nemotron-cascade-test")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_a_run_refused_before_any_node_leaves_no_lock_and_no_journal(tmp_path, make_project):
    """A fresh clone: the upstream check refuses ``--pipelines sft``. Before, the run left its journal
    and its lock (``<key>.json``, ``<key>.lock``)."""
    project = make_project(tmp_path / "fresh")
    code, out = _finish(_kedro(project, "--pipelines", "sft"))
    assert code != 0 and "missing upstream datasets for this run" in out, out[-3000:]
    assert "sft_blend_stage1 (produced by pipeline data_curation" in out
    assert "--from-nodes" not in out and "rerun the same command" not in out  # the error says what to do
    assert _runs(project) == []  # no lock, and no journal (no node ran: nothing to resume)


@pytest.fixture(scope="module")
def curated(tmp_path_factory, make_project):
    project = make_project(tmp_path_factory.mktemp("run_faults"))
    code, out = _finish(_kedro(project, "--pipelines", "data_curation"))
    assert code == 0, out[-4000:]
    return project


def _interrupt_mid_stage1(project: Path) -> tuple[int, str]:
    """Start the sft pipeline and send SIGINT to its process group once ``sft.stage1`` has saved its
    first mid-stage state (step 6 of 60), as Ctrl-C in a terminal does."""
    proc = _kedro(project, *LONG_STAGE1)
    deadline = time.monotonic() + 300
    try:
        while not list((project / "data/06_models/_resume/sft.stage1").glob("*/state.pt")):
            assert proc.poll() is None, _finish(proc)[1][-4000:]
            assert time.monotonic() < deadline, "sft.stage1 never saved its resume state"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        return _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_mid_stage_then_a_lost_mlflow_store_the_same_command_resumes(curated):
    project = curated
    code, out = _interrupt_mid_stage1(project)
    # 2: one message, how to resume; no "Aborted!", no traceback, no --from-nodes
    assert code == 130, out[-4000:]
    assert f"run interrupted by SIGINT (Ctrl-C) with 2 nodes done; {RESUME_HINT}" in out
    assert out.count("rerun the same command") == 1 and "--from-nodes" not in out
    assert "Aborted!" not in out and "Traceback" not in out
    # 3: the lock is gone, the journal stays with the finished nodes and the MLflow runs
    (journal_file,) = _runs(project)
    assert journal_file.endswith(".json")
    journal = json.loads((project / RUNS / journal_file).read_text())
    assert set(journal["done"]) == {"build_base_model", "evaluation.base.evaluate"}
    # 2: the interrupted stage and the parent are KILLED (were FINISHED at 6 of 60 steps, and RUNNING)
    client, runs = _client(project)
    by_id = {r.info.run_id: r for r in runs}
    parent = by_id[journal["mlflow"]["parent"]]
    assert parent.info.status == "KILLED"
    children = {stage: by_id[run_id] for stage, run_id in journal["mlflow"]["children"].items()}
    assert children["sft.stage1"].info.status == "KILLED" and children["base"].info.status == "FINISHED"
    assert client.get_metric_history(children["sft.stage1"].info.run_id, "train/loss")  # the steps it did

    # 3: the lock file a SIGKILLed run leaves, its pid since reused by a live process (pid 1): before,
    # "another kedro run with the same configuration is running (pid 1, ...)" refused every rerun
    (project / RUNS / journal_file).with_suffix(".lock").write_text("1")
    # 1: the MLflow store is lost while the journal is pending; before, every rerun failed at once
    # with "Run with id=... not found" until NEMOTRON_CASCADE_RESUME=0
    (project / "mlflow.db").unlink()
    code, out = _finish(_kedro(project, *LONG_STAGE1))
    assert code == 0 and "another kedro run" not in out, out[-4000:]
    assert (f"the MLflow runs of the run being resumed (parent run {parent.info.run_id}) are not in the tracking "
            "store") in out and "resuming its training state into new MLflow runs" in out
    assert "resume: skipping 2 finished nodes, running 5" in out
    step = int(re.search(r"resuming from step (\d+) \(data/06_models/_resume/sft\.stage1/", out).group(1))
    assert step >= 6  # the stage went on from its mid-stage state, not from step 0
    assert _runs(project) == []  # finished: no journal, no lock
    client, runs = _client(project)
    (new_parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert new_parent.info.status == "FINISHED"
    assert new_parent.data.tags["kedro.resumed_from_run"] == parent.info.run_id
    assert new_parent.data.tags["kedro.session_id"] not in ("", "None")  # was "None": Kedro 1 calls it run_id
    stages = {r.data.tags["stage"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(stages) == {"sft.stage1", "sft.stage2", "report"}  # base was not run again
    assert all(r.info.status == "FINISHED" for r in stages.values())
    history = client.get_metric_history(stages["sft.stage1"].info.run_id, "train/loss")
    assert history and min(m.step for m in history) > step - 6  # only the steps after the resume point
