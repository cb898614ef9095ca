"""Two ``kedro run`` s on one project at the same time: no clobbered checkpoint, no lost MLflow data.

What two processes share: the versioned checkpoint folders (versions are millisecond timestamps,
a run's is its session id), the sqlite ``mlflow.db`` and the run journals. Unit level: processes
saving one checkpoint dataset under the same version, processes opening a fresh ``mlflow.db`` at
the same instant, and a run reading back the checkpoint it wrote while another run writes a newer
one. End to end: after ``data_curation`` and ``sft``, ``reward_model`` (reading ``sft.stage2``)
and ``sft`` (writing new ``sft.*`` versions) run at once, beside a copy of that same ``sft``
command, which the journal lock must refuse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kedro.io.core import Version

from nemotron_cascade.datasets import Checkpoint, CheckpointDataset

pytestmark = pytest.mark.slow

SAME_MS = "2026-01-01T00.00.00.000Z"


def _at_once(script: str, argvs: list[list[str]], tmp_path: Path, timeout: int = 300) -> list[dict]:
    """Run ``script`` once per argv in parallel processes, all released at the same instant (after
    their imports); return each one's last stdout line as JSON."""
    file = tmp_path / f"worker-{time.monotonic_ns()}.py"
    file.write_text(textwrap.dedent(script))
    go = str(time.time() + 8)  # imports first, then all go together
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, str(file), go, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for argv in argvs]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"worker failed:\n{stderr[-3000:]}"
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


SAVE_WORKER = """
import json, os, sys, time
from kedro.io.core import Version
from nemotron_cascade import models
from nemotron_cascade.datasets import Checkpoint, CheckpointDataset

go, src, dst, version = sys.argv[1:5]
model, tokenizer = models.load_model(src), models.load_tokenizer(src)
ds = CheckpointDataset(dst, version=Version(None, version))
while time.time() < float(go):
    time.sleep(0.0005)
ds.save(Checkpoint(model, tokenizer, {"writer": os.getpid()}))
print(json.dumps({"version": ds.resolve_save_version(), "writer": os.getpid()}))
"""


def _complete(version_dir: Path, name: str) -> dict:
    """The lineage of a complete checkpoint version (weights, config, tokenizer, lineage)."""
    files = {p.name for p in (version_dir / name).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "lineage.json"} <= files, (version_dir, files)
    lineage = json.loads((version_dir / name / "lineage.json").read_text())
    assert lineage["version"] == version_dir.name
    return lineage


def test_processes_saving_one_checkpoint_in_the_same_millisecond_get_distinct_complete_versions(
        tmp_path, tokenizer, tiny_model):
    """A ``kedro run`` saves under its session id, a millisecond timestamp: two runs started
    together can carry the same one. Three processes save one dataset under one version at once."""
    import torch

    src = tmp_path / "src"
    tiny_model.save_pretrained(src)
    tokenizer.save_pretrained(src)
    dst = tmp_path / "policy"
    got = _at_once(SAVE_WORKER, [[str(src), str(dst), SAME_MS]] * 3, tmp_path)

    versions = sorted(g["version"] for g in got)
    # the second and third take the next free milliseconds, which sort after the first
    assert versions == [SAME_MS, "2026-01-01T00.00.00.001Z", "2026-01-01T00.00.00.002Z"]
    assert sorted(p.name for p in dst.iterdir()) == versions  # no temporary or half directory left
    writers = set()
    for g in got:
        lineage = _complete(dst / g["version"], "policy")
        assert lineage["writer"] == g["writer"]  # each process's own checkpoint, none overwritten
        writers.add(lineage["writer"])
        loaded = CheckpointDataset(str(dst), version=Version(g["version"], None)).load()
        assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(),
                                                      tiny_model.state_dict().values()))
    assert len(writers) == 3
    assert CheckpointDataset(str(dst), version=Version(None, None)).load().lineage["version"] == versions[-1]


def test_a_run_reads_back_its_own_checkpoint_when_another_run_saved_a_newer_one(tmp_path, tokenizer, tiny_model):
    """Within one run, a later node loads the version this run wrote (same dataset object), not the
    "latest", which a concurrent run may have written meanwhile."""
    mine = CheckpointDataset(str(tmp_path / "p"), version=Version(None, "2026-01-01T00.00.00.001Z"))
    mine.save(Checkpoint(tiny_model, tokenizer, {"run": "mine"}))
    theirs = CheckpointDataset(str(tmp_path / "p"), version=Version(None, "2026-01-01T00.00.00.002Z"))
    theirs.save(Checkpoint(tiny_model, tokenizer, {"run": "theirs"}))
    assert mine.load().lineage["run"] == "mine"
    assert CheckpointDataset(str(tmp_path / "p"), version=Version(None, None)).load().lineage["run"] == "theirs"


MLFLOW_WORKER = """
import json, os, sys, time, types
import mlflow
from nemotron_cascade.tracking.runs import StageTrackingHook

go, project = sys.argv[1:3]
context = types.SimpleNamespace(project_path=project, env="test", config_loader={"mlflow": {"tracking": {
    "enabled": True, "tracking_uri": "sqlite:///mlflow.db", "experiment_name": "race"}}})
while time.time() < float(go):
    time.sleep(0.0005)
hook = StageTrackingHook()
hook.after_context_created(context)  # opens (creates) the store and the experiment
run = hook._client.create_run(hook._experiment_id, run_name=f"writer-{os.getpid()}")
for step in range(30):
    hook._client.log_metric(run.info.run_id, "train/loss", 1.0 / (step + 1), step=step)
hook._client.set_terminated(run.info.run_id)
print(json.dumps({"experiment": hook._experiment_id, "run": run.info.run_id}))
"""


def test_runs_starting_together_on_a_fresh_mlflow_db_all_get_it_and_keep_their_metrics(tmp_path):
    """mlflow creates a new sqlite store's tables without a lock: unguarded, processes starting
    together fail with ``duplicate column name`` or an alembic ``CommandError``."""
    import mlflow

    for trial in range(2):
        project = tmp_path / f"project{trial}"
        project.mkdir()
        got = _at_once(MLFLOW_WORKER, [[str(project)]] * 4, tmp_path)
        assert len({g["experiment"] for g in got}) == 1  # one experiment, created once
        client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        runs = client.search_runs([got[0]["experiment"]])
        assert {r.info.run_id for r in runs} == {g["run"] for g in got}
        for r in runs:
            assert r.info.status == "FINISHED"
            assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 30


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_project):
    return make_project(tmp_path_factory.mktemp("concurrent_project"))


def _kedro(project: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "COLUMNS": "2000"}
    return subprocess.Popen([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test", *args], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _versions(project: Path, dataset: str) -> list[str]:
    return sorted(p.name for p in (project / "data/06_models" / dataset).iterdir())


def test_two_stages_at_once_keep_every_checkpoint_and_every_mlflow_run(project):
    import mlflow

    for pipeline in ("data_curation", "sft"):
        code, out = _finish(_kedro(project, "--pipelines", pipeline))
        assert code == 0, out[-4000:]
    before = {d: _versions(project, d) for d in ("base", "sft.stage1", "sft.stage2")}

    start = time.monotonic()
    procs = {"reward_model": _kedro(project, "--pipelines", "reward_model"),
             "sft": _kedro(project, "--pipelines", "sft")}
    time.sleep(1.0)
    procs["sft_again"] = _kedro(project, "--pipelines", "sft")  # the same configuration as "sft"
    results = {name: _finish(p) for name, p in procs.items()}
    wall = time.monotonic() - start
    print(f"\nthree concurrent kedro runs finished in {wall:.0f} s")

    assert results["reward_model"][0] == 0, results["reward_model"][1][-4000:]
    # of the two identical sft commands one ran, the other was refused with a clear message
    codes = sorted((results["sft"][0], results["sft_again"][0]))
    assert codes[0] == 0 and codes[1] != 0, (results["sft"][1][-3000:], results["sft_again"][1][-3000:])
    refused = results["sft"][1] if results["sft"][0] else results["sft_again"][1]
    assert "another kedro run with the same configuration is running" in refused

    # every checkpoint version is complete, loadable and traces to a complete parent
    after = {d: _versions(project, d) for d in ("base", "sft.stage1", "sft.stage2", "reward_model")}
    for d in ("base", "sft.stage1", "sft.stage2"):
        assert len(after[d]) == 2 and set(before[d]) < set(after[d]), (d, before[d], after[d])
    assert len(after["reward_model"]) == 1
    lineages = {}
    for dataset, versions in after.items():
        for v in versions:
            lineages[dataset, v] = _complete(project / "data/06_models" / dataset / v, dataset)
            model_class = "auto-sequence-classification" if dataset == "reward_model" else "auto-causal-lm"
            CheckpointDataset(str(project / "data/06_models" / dataset), version=Version(v, None),
                              model_class=model_class).load()
    new = {d: (set(after[d]) - set(before[d])).pop() for d in ("sft.stage1", "sft.stage2")}
    assert lineages["sft.stage2", new["sft.stage2"]]["parent"]["version"] == new["sft.stage1"]
    assert lineages["reward_model", after["reward_model"][0]]["parent"]["version"] in after["sft.stage2"]
    assert not list((project / "data/06_models").glob("*/*/.*tmp*"))
    assert not list((project / "data/09_tracking/runs").glob("*.lock"))  # both locks released

    # MLflow: every run of both stages, finished, with its metrics
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("nemotron-cascade-test")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.data.tags["kedro.pipeline"] for r in parents) == ["data_curation", "reward_model", "sft", "sft"]
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    children = {}
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:
            children.setdefault(r.data.tags["mlflow.parentRunId"], {})[r.data.tags["stage"]] = r
    stages = sorted(sorted(children[p.info.run_id]) for p in parents)
    assert stages == [["base", "report", "sft.stage1", "sft.stage2"]] * 2 + [["data_curation"], ["reward_model"]]
    for p in parents:
        for stage, child in children[p.info.run_id].items():
            if stage != "report":
                assert child.data.metrics, (p.data.tags["kedro.pipeline"], stage)
    wrote = {"sft.stage2": "wrote.sft.stage2.policy", "reward_model": "wrote.reward_model.model"}
    for p in parents:
        for stage, tag in wrote.items():
            child = children[p.info.run_id].get(stage)
            if child is not None:
                assert len(client.get_metric_history(child.info.run_id, "train/loss")) >= 2, stage
                assert child.data.tags[tag] in after[stage], (stage, child.data.tags[tag])
