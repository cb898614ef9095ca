"""End-to-end ``kedro run`` of the smoke profile in a scratch copy of the project."""

import json
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_project):
    return make_project(tmp_path_factory.mktemp("project"))


def kedro(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "2", "COLUMNS": "2000"}
    kedro_bin = Path(sys.executable).parent / "kedro"
    proc = subprocess.run([str(kedro_bin), "run", "--env", "test", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"kedro run {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.mark.slow
def test_missing_upstream_names_the_dataset_and_its_pipeline(project):
    proc = kedro(project, "--pipelines", "sft", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "teacher_samples" in out and "--pipelines=data_curation" in out
    proc = kedro(project, "--pipelines", "rlhf", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "sft.stage2.policy" in out and "--pipelines=sft" in out
    assert "reward_model.model" in out and "--pipelines=reward_model" in out


@pytest.mark.slow
def test_curation_then_sft_stage_by_stage(project):
    kedro(project, "--pipelines", "data_curation")
    assert (project / "data/05_model_input/sft_blend_stage2.jsonl").exists()
    # the data card: every planted leak, duplicate and flawed response removed, nothing else
    card = (project / "data/08_reporting/data_card.md").read_text()
    assert "| benchmark_leak | 14 | 14 |" in card and "| near_duplicate | 14 | 14 |" in card
    assert "| wrong_answer | 1 | 1 |" in card and "Removed without being planted: none." in card
    assert (project / "data/08_reporting/data_card.png").stat().st_size > 1000
    kedro(project, "--pipelines", "sft")

    matrix = pd.read_csv(project / "data/08_reporting/cascade_matrix.csv")
    assert list(matrix["stage"]) == ["base", "sft_stage1", "sft"]
    assert {"math", "code", "science", "instruction_following", "tool_calling", "swe", "preference",
            "response_length"} <= set(matrix.columns)
    assert (project / "data/08_reporting/cascade_matrix.png").stat().st_size > 1000

    # every checkpoint is versioned and records the one it was trained from
    (stage2,) = (project / "data/06_models/sft.stage2").iterdir()
    lineage = json.loads((stage2 / "sft.stage2" / "lineage.json").read_text())
    (stage1,) = (project / "data/06_models/sft.stage1").iterdir()
    assert lineage["parent"]["version"] == stage1.name and lineage["stage"] == "sft"
    # the trainers' last states (data/06_models/_resume/<stage>/<run key>) went once the checkpoints were saved
    assert lineage["resume_dir"].startswith("data/06_models/_resume/sft.stage2/")
    assert not list((project / "data/06_models/_resume").glob("*/*/state.pt"))


@pytest.mark.slow
def test_mlflow_has_a_parent_run_and_one_child_per_stage(project):
    db = sqlite3.connect(project / "mlflow.db")
    tags = db.execute("select run_uuid, key, value from tags").fetchall()
    parents = {r for r, k, v in tags if k == "kedro.pipeline" and v == "sft"}
    assert len(parents) == 1
    (parent,) = parents
    # the parent run records what decides the numbers beyond seed and code (torch, pinned kernels)
    parent_tags = {k: v for r, k, v in tags if r == parent}
    assert parent_tags["numerics.torch"].startswith("2.13.0")
    if platform.machine() in ("x86_64", "AMD64"):
        assert parent_tags["numerics.cpu_capability"] == "AVX2" and parent_tags["numerics.pin"] == "avx2"
    children = {r for r, k, v in tags if k == "mlflow.parentRunId" and v == parent}
    stages = {v for r, k, v in tags if k == "stage" and r in children}
    assert stages == {"base", "sft.stage1", "sft.stage2", "report"}
    by_run = {}
    for r, k, v in tags:
        by_run.setdefault(r, {})[k] = v
    stage2 = next(t for t in by_run.values() if t.get("stage") == "sft.stage2")
    assert stage2["read.sft.stage1.policy"] and stage2["wrote.sft.stage2.policy"]
    metrics = {k for (k,) in db.execute("select distinct key from metrics")}
    assert {"train/loss", "eval/math", "eval/code", "eval/swe", "data/packing_efficiency"} <= metrics


@pytest.mark.slow
def test_rl_stages_run_one_by_one_from_the_catalogued_checkpoints(project):
    for stage in ("reward_model", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"):
        kedro(project, "--pipelines", stage)
    matrix = pd.read_csv(project / "data/08_reporting/cascade_matrix.csv")
    assert list(matrix["stage"]) == ["base", "sft_stage1", "sft", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"]

    def only_version(stage):
        (version,) = (project / "data/06_models" / stage).iterdir()
        return version.name, json.loads((version / stage / "lineage.json").read_text())

    sft_version, _ = only_version("sft.stage2")
    rm_version, rm_lineage = only_version("reward_model")
    rlhf_version, rlhf_lineage = only_version("rlhf")
    if_version, if_lineage = only_version("if_rl")
    math_version, math_lineage = only_version("math_rl")
    code_version, code_lineage = only_version("code_rl")
    _, swe_lineage = only_version("swe_rl")
    assert swe_lineage["parent"]["version"] == code_version and swe_lineage["reward"] == "swe"
    swe_history = json.loads((project / "data/07_model_output/swe_rl/train_history.json").read_text())
    assert [h["max_prompt_tokens"] for h in swe_history] == [100, 400]  # the test profile's context curriculum
    swe_eval = json.loads((project / "data/08_reporting/eval/swe_rl.metrics.json").read_text())
    assert {"swe", "swe_resolved", "swe_avg_of_2", "swe_best_of_2", "swe_max_of_2"} <= set(swe_eval)
    assert 0.0 <= swe_eval["swe_resolved"] <= 1.0
    assert rm_lineage["parent"]["version"] == sft_version and "val_accuracy" in rm_lineage["validation"]
    assert rlhf_lineage["parent"] == {"stage": "sft", "version": sft_version, "path": rlhf_lineage["parent"]["path"]}
    assert rlhf_lineage["reward"] == "reward_model" and rlhf_lineage["reward_model"]["version"] == rm_version
    assert if_lineage["parent"]["version"] == rlhf_version and if_lineage["reward"] == "instruction_following"
    assert math_lineage["parent"]["version"] == if_version
    assert math_lineage["reward"] == "math" and code_lineage["reward"] == "code"
    assert code_lineage["parent"]["version"] == math_version
    for stage in ("rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"):  # each stage's curves, a catalogued figure
        assert (project / f"data/08_reporting/curves/{stage}.png").stat().st_size > 1000, stage
    rlhf_history = json.loads((project / "data/07_model_output/rlhf/train_history.json").read_text())
    assert {"gt_quality", "repeated_sentences", "response_length"} <= set(rlhf_history[-1])
    history = json.loads((project / "data/07_model_output/math_rl/train_history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3]
    assert [h["max_new_tokens"] for h in history] == [24, 24, 32]  # the test profile's length curriculum
    metrics = {k for (k,) in sqlite3.connect(project / "mlflow.db").execute("select distinct key from metrics")}
    assert {"train/reward", "train/entropy", "train/zero_variance_groups", "train/truncation_rate",
            "train/gt_quality", "train/val_accuracy", "train/loss", "localisation/guess_top1",
            "localisation/recall_at_2_merged"} <= metrics


@pytest.mark.slow
def test_kedro_viz_builds_offline_with_every_stage_as_a_namespace(project):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "viz", "build"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    main = json.loads((project / "build/api/main").read_text())
    namespaces = set(main["modular_pipelines"])
    assert {"sft.stage1", "sft.stage2", "reward_model", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl",
            "evaluation.math_rl", "evaluation.swe_rl"} <= namespaces
    assert main["selected_pipeline"] == "__default__"
    assert {p["id"] for p in main["pipelines"]} >= {"__default__", "cascade", "sft", "math_rl", "swe_rl"}


@pytest.mark.slow
def test_a_malformed_raw_row_is_quarantined_and_a_malformed_curated_row_stops_the_run(project):
    raw = project / "data/01_raw/tasks/math.jsonl"
    lines = raw.read_text().splitlines()
    row = json.loads(lines[2])
    del row["answer"]
    lines[2] = json.dumps(row)
    lines[4] = "{broken"
    raw.write_text("\n".join(lines) + "\n")
    kedro(project, "--pipelines", "data_curation", "--from-nodes", "curate_tasks")
    quarantined = [json.loads(x) for x in (project / "data/02_intermediate/quarantine.jsonl").read_text().splitlines()]
    assert [(q["file"].endswith("tasks/math.jsonl"), q["row"], q["reason"].split(" (")[0]) for q in quarantined] == [
        (True, 3, "missing field 'answer'"), (True, 5, "invalid JSON")]
    assert "## Quarantine: 2 malformed rows" in (project / "data/08_reporting/data_card.md").read_text()

    curated = project / "data/02_intermediate/tasks/curated.jsonl"
    lines = curated.read_text().splitlines()
    row = json.loads(lines[2])
    del row["prompt"]
    lines[2] = json.dumps(row)
    curated.write_text("\n".join(lines) + "\n")
    proc = kedro(project, "--pipelines", "data_curation", "--from-nodes", "split_tasks", check=False)
    out = " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert proc.returncode != 0
    assert "curated.jsonl: row 3: missing field 'prompt'" in out.replace("│ ", "").replace(" │", "")


def _kill_when(proc: subprocess.Popen, root: Path, ready: str, timeout: float = 300) -> None:
    """SIGKILL the run (its whole process group) as soon as a file matching ``root/ready`` exists."""
    deadline = time.monotonic() + timeout
    while not list(root.glob(ready)):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {root / ready} appeared")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{root / ready} did not appear in {timeout} s")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_the_whole_cascade_runs_in_one_kedro_run_and_resumes_after_a_kill(tmp_path_factory, make_project):
    """`kedro run --env test` with the default pipeline: every stage, every evaluation, one matrix.

    The run is killed (SIGKILL) in the middle of code_rl; the same command then skips every finished
    node, resumes code_rl from its mid-stage state and ends with as many optimiser steps as an
    uninterrupted run, in the same MLflow runs.
    """
    fresh = make_project(tmp_path_factory.mktemp("cascade"))
    steps = 12
    args = ("--params", f"code_rl.train.max_steps={steps},code_rl.train.checkpoint_every=1")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "2", "COLUMNS": "2000"}
    with open(fresh / "killed.log", "w") as log:  # a file, not a pipe nobody reads while it fills
        killed = subprocess.Popen([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test", *args],
                                  cwd=fresh, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _kill_when(killed, fresh / "data/06_models/_resume", "code_rl/*/state.pt")  # <stage>/<run key>
    assert killed.returncode == -signal.SIGKILL
    (journal,) = (fresh / "data/09_tracking/runs").glob("*.json")
    done = json.loads(journal.read_text())["done"]
    assert "math_rl.train_grpo" in done and "code_rl.train_grpo" not in done
    math_versions = sorted(p.name for p in (fresh / "data/06_models/math_rl").iterdir())

    proc = kedro(fresh, *args)
    out = " ".join(proc.stdout.split()) + " ".join(proc.stderr.split())
    resumed_from = int(re.search(r"resuming from step (\d+)", out).group(1))
    assert 1 <= resumed_from < steps
    skipped = int(re.search(r"resume: skipping (\d+) finished nodes", out).group(1))
    assert skipped >= len(done) - 2  # a done node whose in-memory output is needed again reruns
    assert sorted(p.name for p in (fresh / "data/06_models/math_rl").iterdir()) == math_versions  # not retrained
    history = json.loads((fresh / "data/07_model_output/code_rl/train_history.json").read_text())
    assert [h["step"] for h in history] == list(range(1, steps + 1))  # as many optimiser steps as uninterrupted
    assert not journal.exists() and not list((fresh / "data/06_models/_resume").glob("*/*/state.pt"))

    matrix = pd.read_csv(fresh / "data/08_reporting/cascade_matrix.csv")
    assert list(matrix["stage"]) == ["base", "sft_stage1", "sft", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"]
    assert matrix.drop(columns="stage").notna().all().all()
    db = sqlite3.connect(fresh / "mlflow.db")
    parents = [r for (r,) in db.execute("select run_uuid from tags where key = 'kedro.pipeline'")]
    assert len(parents) == 1  # the resumed run continued the killed run's MLflow runs
    stages = {v for (v,) in db.execute("select value from tags where key = 'stage'")}
    assert {"data_curation", "reward_model", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"} <= stages
    (code_run,) = [r for (r,) in db.execute("select run_uuid from tags where key = 'stage' and value = 'code_rl'")]
    logged = {s for (s,) in db.execute("select step from metrics where run_uuid = ? and key = 'train/reward'",
                                       (code_run,))}
    assert logged == set(range(1, steps + 1))  # the killed run's points are kept, the rest continue them
    inputs = {n for (n,) in db.execute("select d.name from datasets d join inputs i on i.source_id = d.dataset_uuid "
                                       "where i.destination_id = ?", (code_run,))}
    assert "rl_prompts.jsonl" in inputs

    # the lineage of the last checkpoint reaches the curated data, across both kedro runs
    lineage = subprocess.run([sys.executable, "-m", "nemotron_cascade.lineage", "swe_rl", "--json"], cwd=fresh,
                             capture_output=True, text=True, check=True)
    records = json.loads(lineage.stdout)
    assert [r["stage"] for r in records] == ["swe_rl", "code_rl", "math_rl", "if_rl", "rlhf", "sft", "sft_stage1",
                                             "base"]
    files = {f["path"]: f["status"] for r in records for i in r["inputs"].values() for f in i["files"]}
    assert files["data/03_primary/rl_prompts.jsonl"] == "unchanged"
    assert files["data/05_model_input/sft_blend_stage1.jsonl"] == "unchanged"
    assert records[4]["reward_model"]["inputs"]["preference_pairs"]["rows"] > 0

    # the analysis notebook runs headless on this project: curves per stage, the matrix, forgetting
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "notebooks/cascade_analysis.ipynb", as_version=4)
    os.environ.update(KEDRO_ENV="test", NEMOTRON_CASCADE_PROJECT=str(fresh))
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(fresh)}}
                       ).execute()
    finally:
        for key in ("KEDRO_ENV", "NEMOTRON_CASCADE_PROJECT"):
            os.environ.pop(key, None)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the curves and the matrix
    text = "".join(o.get("text", "") for o in outputs)
    assert "kedro run __default__ (env test)" in text and "largest drop from the best value" in text
