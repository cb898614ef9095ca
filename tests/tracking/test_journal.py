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
