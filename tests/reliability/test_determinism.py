"""Determinism: the same seed on the ``test`` profile gives the same results twice on CPU.

``kedro run --env test --pipelines data_curation,sft`` runs in two fresh copies of the project, side
by side (one thread each, under two minutes on 2 cores; evaluations generate 16 tokens instead of
the profile's 48, which halves the time and still runs every benchmark, SWE's sampled k=2
included). Measured once: a 2-thread run of the unmodified profile writes the same bytes as a
1-thread one, so the thread count is not a source of difference either. Everything the runs write
under ``data/`` must be byte-identical — raw world, curated data, SFT blends, the model weights of
every stage, evaluation records and metrics, the data card and its figure — except provenance that
is *meant* to differ (checkpoint versions are timestamps, lineage records paths, MLflow run ids and
resume directories keyed by the parent's version) and
throughput measurements; those fields are removed before comparing, and nothing else is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

VERSION = re.compile(r"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z")  # Kedro's version folder names
# resume_dir is keyed by the fingerprint of the run, which holds the parent checkpoint's version (a
# timestamp): two runs a few milliseconds apart get different directories, by design
PROVENANCE = {"version", "path", "mlflow_run_id", "checkpoint_version", "resume_dir"}


def without(value, drop):
    """``value`` with every dict key for which ``drop(key)`` holds removed, at any depth."""
    if isinstance(value, dict):
        return {k: without(v, drop) for k, v in value.items() if not drop(k)}
    if isinstance(value, list):
        return [without(v, drop) for v in value]
    return value


def comparable(path: Path):
    """What must be equal between the two runs: the bytes, or the JSON less the expected differences."""
    if path.name == "lineage.json" or path.name.endswith(".metrics.json"):
        return without(json.loads(path.read_text()), PROVENANCE.__contains__)
    if path.name == "train_history.json":
        return without(json.loads(path.read_text()), lambda k: k.endswith("_per_s"))  # wall-clock throughput
    return path.read_bytes()


def outputs(project: Path) -> dict[str, Path]:
    data = project / "data"
    return {VERSION.sub("<version>", str(p.relative_to(data))): p for p in sorted(data.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_runs_with_the_same_seed_write_identical_results(tmp_path, make_project):
    projects = [make_project(tmp_path / name) for name in ("first", "second")]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "COLUMNS": "2000"}
    kedro_bin = Path(sys.executable).parent / "kedro"
    procs = [subprocess.Popen([str(kedro_bin), "run", "--env", "test", "--pipelines", "data_curation,sft",
                               "--params", "evaluation.max_new_tokens=16"],
                              cwd=p, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in projects]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-5000:]

    first, second = (outputs(p) for p in projects)
    assert sorted(first) == sorted(second)
    assert {"05_model_input/sft_blend_stage1.jsonl", "05_model_input/sft_blend_stage2.jsonl",
            "08_reporting/eval/base.metrics.json", "08_reporting/eval/sft.stage2.metrics.json",
            "08_reporting/eval/sft.stage2.records.jsonl", "07_model_output/sft.stage2/train_history.json",
            "06_models/sft.stage2/<version>/sft.stage2/model.safetensors"} <= set(first)
    differ = [name for name in first if comparable(first[name]) != comparable(second[name])]
    assert not differ, f"the two runs differ in {differ}"
