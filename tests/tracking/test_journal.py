"""The run journal: which nodes a resumed run skips, which versions it pins, when it starts afresh."""

import json
import os

import pytest
from kedro.io import DataCatalog, MemoryDataset, Version
from kedro.pipeline import Pipeline, node

from nemotron_cascade import journal as jl
from nemotron_cascade.datasets import JsonlDataset


def _identity(x):
    return x


def _pipeline():
    # a -> mem (in memory) -> b -> ckpt (versioned file) -> c -> report (file)
    return Pipeline([
        node(_identity, "raw", "mem", name="a"),
        node(_identity, "mem", "ckpt", name="b"),
        node(_identity, "ckpt", "report", name="c"),
    ])


def _catalog(tmp_path, load_version=None):
    return DataCatalog({
        "raw": MemoryDataset([{"x": 1}]),
        "ckpt": JsonlDataset(str(tmp_path / "ckpt.jsonl"), version=Version(load_version, "2026-11-28T00.00.02.000Z")),
        "report": JsonlDataset(str(tmp_path / "report.jsonl")),
    })


def _journal(tmp_path, done):
    j = jl.RunJournal.open(tmp_path / "runs", "k", "s1")
    for name, versions in done.items():
        j.node_done(name, versions)
    return jl.RunJournal.open(tmp_path / "runs", "k", "s2")


@pytest.mark.parametrize("done, expected, reason", [
    ({}, None, "an empty journal is not a resumable run: start afresh"),
    ({"a": {"mem": None}}, {"a", "b", "c"}, "a's output lives in memory only, so a reruns for b"),
    ({"a": {"mem": None}, "b": {"ckpt": "2026-11-28T00.00.01.000Z"}}, {"c"},
     "b's checkpoint is on disk: neither a nor b reruns"),
    ({"a": {"mem": None}, "b": {"ckpt": "v"}, "c": {"report": None}}, set(), "everything done: nothing to run"),
])
def test_remaining_nodes(tmp_path, done, expected, reason):
    j = _journal(tmp_path, done)
    if expected is None:
        assert not j.resumed, reason
        return
    assert j.resumed
    remaining = j.remaining(_pipeline(), _catalog(tmp_path))
    got = {n.name for n in remaining.nodes} if remaining is not None else set()
    assert got == expected, reason


def test_done_checkpoints_are_pinned_to_the_killed_runs_version(tmp_path):
    for version, value in (("2026-11-28T00.00.01.000Z", "killed run"), ("2026-11-28T00.00.05.000Z", "a later run")):
        JsonlDataset(str(tmp_path / "ckpt.jsonl"), version=Version(None, version)).save([{"who": value}])
    j = _journal(tmp_path, {"a": {"mem": None}, "b": {"ckpt": "2026-11-28T00.00.01.000Z"}})
    catalog = _catalog(tmp_path)
    assert catalog.load("ckpt") == [{"who": "a later run"}]  # the latest, without the journal
    j.remaining(_pipeline(), catalog)
    assert catalog.load("ckpt") == [{"who": "killed run"}]


def test_a_journal_is_replaced_atomically_and_finish_removes_it(tmp_path):
    j = jl.RunJournal.open(tmp_path, "k", "s1")
    j.node_done("a", {"mem": None})
    j.set_mlflow("parent", {"sft": "child"})
    data = json.loads((tmp_path / "k.json").read_text())
    assert data["done"] == {"a": {"mem": None}} and data["mlflow"]["children"] == {"sft": "child"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json", "k.lock"]  # no temporary file left
    j.finish()
    assert not list(tmp_path.iterdir())


def test_resume_can_be_refused_and_a_corrupt_journal_starts_afresh(tmp_path):
    j = jl.RunJournal.open(tmp_path, "k", "s1")
    j.node_done("a", {})
    assert not jl.RunJournal.open(tmp_path, "k", "s2", allow_resume=False).resumed
    (tmp_path / "k.json").write_text("{not json")
    fresh = jl.RunJournal.open(tmp_path, "k", "s3")
    assert not fresh.resumed and fresh.done == {}


def test_the_key_changes_with_any_parameter_or_node_selection():
    base = jl.run_key("base", ["a", "b"], {"lr": 1e-4, "nested": {"steps": 3}})
    assert base == jl.run_key("base", ["b", "a"], {"nested": {"steps": 3}, "lr": 1e-4})  # order-free
    assert base != jl.run_key("base", ["a", "b"], {"lr": 1e-4, "nested": {"steps": 4}})
    assert base != jl.run_key("base", ["a"], {"lr": 1e-4, "nested": {"steps": 3}})
    assert base != jl.run_key("test", ["a", "b"], {"lr": 1e-4, "nested": {"steps": 3}})


def test_a_second_live_run_of_the_same_configuration_is_refused(tmp_path):
    import subprocess
    import sys

    j = jl.RunJournal.open(tmp_path, "k", "s1")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "k.lock").write_text(str(other.pid))  # as if that live process held it
        with pytest.raises(jl.RunInProgressError, match=f"pid {other.pid}"):
            jl.RunJournal.open(tmp_path, "k", "s2")
    finally:
        other.kill()
        other.wait()
    resumed = jl.RunJournal.open(tmp_path, "k", "s3")  # the holder died (killed): its lock is stale
    assert (tmp_path / "k.lock").read_text() == str(os.getpid())
    j.release()
    assert not (tmp_path / "k.lock").exists()
    assert not resumed.resumed  # nothing was done yet


# -- the hook that owns the journal, and the runner that finds it through the hook manager ----------

def _session(tmp_path, hook, pipeline, catalog, runner):
    """Drive one run as a KedroSession does: the hooks around ``runner.run`` on one hook manager."""
    import types

    from kedro.framework.hooks.manager import _create_hook_manager

    manager = _create_hook_manager()
    manager.register(hook)
    manager.hook.after_context_created(context=types.SimpleNamespace(project_path=tmp_path, env="test"))
    params = {"session_id": "s-now"}
    manager.hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    runner.run(pipeline, catalog, manager)
    manager.hook.after_pipeline_run(run_params=params, run_result={}, pipeline=pipeline, catalog=catalog)


class _Saved:
    """A saved output with lineage, as a trainer's checkpoint is."""

    def __init__(self, lineage):
        self.lineage = lineage


def _state_dir(path):
    path.mkdir(parents=True)
    (path / "state.pt").write_text("state")
    return path


def _probe(on_save):
    """A dataset that calls ``on_save`` when saved (kedro 1 has no LambdaDataset)."""
    from kedro.io import AbstractDataset

    class Probe(AbstractDataset):
        def load(self):
            raise NotImplementedError

        def save(self, data):
            on_save(data)

        def _describe(self):
            return {}

    return Probe()


def test_the_resume_hook_clears_a_checkpoints_resume_dir_once_all_the_nodes_outputs_are_saved(tmp_path):
    derived = _state_dir(tmp_path / "_resume" / "derived")  # recorded in the checkpoint's lineage
    from_params = _state_dir(tmp_path / "_resume" / "params")  # the older way: a params:*resume_dir input
    seen = []

    def save_report(_):  # saved after the checkpoint: the state must still be there
        seen.append((derived / "state.pt").exists() and (from_params / "state.pt").exists())

    def train(directory, _rows):
        return _Saved({"resume_dir": str(derived)}), [{"done": True}]

    pipeline = Pipeline([node(train, ["params:train.resume_dir", "raw"], ["ckpt", "report"], name="train")])
    catalog = DataCatalog({"raw": MemoryDataset([1]), "params:train.resume_dir": MemoryDataset(str(from_params)),
                           "ckpt": MemoryDataset(), "report": _probe(save_report)})
    hook = jl.ResumeHook()
    _session(tmp_path, hook, pipeline, catalog, jl.ResumableRunner())
    assert seen == [True], "the resume state went before every output of the node was saved"
    assert not derived.exists() and not from_params.exists()
    assert hook.journal is None and not list((tmp_path / jl.JOURNAL_DIR).glob("*.json"))  # finished: no journal


def test_the_resumable_runner_reads_the_journal_of_the_resume_hook_it_runs_with(tmp_path):
    ran = []

    def record(name):
        def fn(x):
            ran.append(name)
            return x
        return fn

    pipeline = Pipeline([node(record("a"), "raw", "mem", name="a"), node(record("b"), "mem", "ckpt", name="b"),
                         node(record("c"), "ckpt", "report", name="c")])
    killed = "2026-11-28T00.00.01.000Z"
    JsonlDataset(str(tmp_path / "ckpt.jsonl"), version=Version(None, killed)).save([{"x": 1}])
    key = jl.run_key("test", [n.name for n in pipeline.nodes], {})
    journal = jl.RunJournal.open(tmp_path / jl.JOURNAL_DIR, key, "s-killed")
    journal.node_done("a", {"mem": None})
    journal.node_done("b", {"ckpt": killed})
    journal.release()  # the killed run's lock is gone with it

    _session(tmp_path, jl.ResumeHook(), pipeline, _catalog(tmp_path), jl.ResumableRunner())
    assert ran == ["c"]  # a and b were done by the killed run
    assert JsonlDataset(str(tmp_path / "report.jsonl")).load() == [{"x": 1}]

    ran.clear()  # without a ResumeHook on the hook manager the runner runs every node
    jl.ResumableRunner().run(pipeline, _catalog(tmp_path))
    assert ran == ["a", "b", "c"]


def test_the_resume_hook_is_the_tracking_hooks_run_store(tmp_path):
    import types

    hook = jl.ResumeHook()
    assert hook.mlflow_runs() == {} and hook.nodes_to_run(_pipeline()) == {"a", "b", "c"}  # no run yet
    key = jl.run_key("test", ["a", "b", "c"], {})
    killed = jl.RunJournal.open(tmp_path / jl.JOURNAL_DIR, key, "s-killed")
    killed.node_done("a", {"mem": None})
    killed.node_done("b", {"ckpt": "2026-11-28T00.00.01.000Z"})
    killed.set_mlflow("p", {"sft": "c1"})
    killed.release()

    hook.after_context_created(types.SimpleNamespace(project_path=tmp_path, env="test"))
    hook.before_pipeline_run({"session_id": "s-now"}, _pipeline(), _catalog(tmp_path))
    assert hook.mlflow_runs() == {"parent": "p", "children": {"sft": "c1"}}
    assert hook.nodes_to_run(_pipeline()) == {"c"}
    hook.record_mlflow_runs("p", {"sft": "c1", "rlhf": "c2"})
    assert json.loads(hook.journal.path.read_text())["mlflow"]["children"] == {"sft": "c1", "rlhf": "c2"}
    hook.on_pipeline_error()
    assert hook.journal is None and hook.mlflow_runs() == {}
