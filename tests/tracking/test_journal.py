"""The run journal: which nodes a resumed run skips, which versions it pins, when it starts afresh."""

import json
import os

import pytest
from kedro.framework.hooks import hook_impl
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


HOLDER = """
import sys, time
from nemotron_cascade import journal as jl
jl.RunJournal.open(sys.argv[1], "k", "s-other")
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_live_run_of_the_same_configuration_is_refused(tmp_path):
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert "held" in iter(lambda: other.stdout.readline().strip(), "")  # that live process holds the journal
        with pytest.raises(jl.RunInProgressError, match=f"pid {other.pid}"):
            jl.RunJournal.open(tmp_path, "k", "s2")
    finally:
        other.kill()
        other.wait()
    resumed = jl.RunJournal.open(tmp_path, "k", "s3")  # the holder died (killed): its lock died with it
    assert (tmp_path / "k.lock").read_text() == str(os.getpid())
    resumed.release()
    assert not (tmp_path / "k.lock").exists()
    assert not resumed.resumed  # nothing was done yet


def test_a_lock_file_naming_a_live_process_that_does_not_hold_it_is_not_a_running_run(tmp_path):
    """A killed run's lock file stays (a SIGKILL runs no cleanup); its pid may since belong to any
    live process (here: pid 1 and this test's parent). Only a held flock means a running run."""
    for pid in (1, os.getppid()):
        (tmp_path / "k.lock").write_text(str(pid))
        journal = jl.RunJournal.open(tmp_path, "k", "s-next")
        assert (tmp_path / "k.lock").read_text() == str(os.getpid())
        journal.release()
        assert not (tmp_path / "k.lock").exists()


def test_the_same_process_may_reopen_the_journal_it_holds(tmp_path):
    """A second session in one process (a notebook) takes its own lock over instead of refusing itself."""
    first = jl.RunJournal.open(tmp_path, "k", "s1")
    second = jl.RunJournal.open(tmp_path, "k", "s2")
    assert (tmp_path / "k.lock").read_text() == str(os.getpid())
    second.release()
    first.release()  # already released with the second: nothing left, no error
    assert not (tmp_path / "k.lock").exists()


def test_the_key_includes_the_pinned_versions():
    """A run pinned with --load-versions is another run than the same command without the pin (or
    with another pin): rerun without it, a killed pinned run is not resumed on another parent."""
    base = jl.run_key("test", ["a"], {"lr": 1})
    assert base == jl.run_key("test", ["a"], {"lr": 1}, {}) == jl.run_key("test", ["a"], {"lr": 1}, None)
    pinned = jl.run_key("test", ["a"], {"lr": 1}, {"sft.stage2.policy": "2026-01-01T00.00.00.000Z"})
    assert pinned != base
    assert pinned != jl.run_key("test", ["a"], {"lr": 1}, {"sft.stage2.policy": "2026-01-02T00.00.00.000Z"})


# -- the hook that owns the journal, and the runner that finds it through the hook manager ----------

def _session(tmp_path, hook, pipeline, catalog, runner, others=(), load_versions=None):
    """Drive one run as a KedroSession does: the hooks around ``runner.run`` on one hook manager."""
    import types

    from kedro.framework.hooks.manager import _create_hook_manager

    manager = _create_hook_manager()
    for h in (hook, *others):  # registered as in settings.py: the resume hook first
        manager.register(h)
    manager.hook.after_context_created(context=types.SimpleNamespace(project_path=tmp_path, env="test"))
    params = {"session_id": "s-now", "load_versions": load_versions}
    manager.hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    try:
        runner.run(pipeline, catalog, manager)
    except Exception as error:  # as KedroSession.run: a KeyboardInterrupt would skip this
        manager.hook.on_pipeline_error(error=error, run_params=params, pipeline=pipeline, catalog=catalog)
        raise
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


# -- what a failed, refused or interrupted run leaves behind (issue #27: 2, 3, 8, 10) ----------------

class _Refuses:
    """A hook that refuses the run before any node, as the upstream check or a failing MLflow store does."""

    @hook_impl
    def before_pipeline_run(self):
        raise RuntimeError("missing upstream datasets for this run")


class _FailsOnError:
    """A hook whose own ``on_pipeline_error`` fails (an MLflow store that is gone)."""

    @hook_impl
    def on_pipeline_error(self):
        raise OSError("no such table: runs")


def _runs_dir(tmp_path):
    return tmp_path / jl.JOURNAL_DIR


def _fails_in(name):
    def fn(x):
        if name == "interrupt":
            raise KeyboardInterrupt
        if name == "sigterm":
            import signal

            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt the node")
        raise RuntimeError("boom")
    return fn


def _two_nodes(second="fail"):
    return Pipeline([node(_identity, "raw", "mem", name="a"), node(_fails_in(second), "mem", "out", name="b")])


def test_a_hook_refusing_the_run_before_any_node_leaves_no_lock_and_no_empty_journal(tmp_path):
    catalog = DataCatalog({"raw": MemoryDataset(1)})
    with pytest.raises(RuntimeError, match="missing upstream"):
        _session(tmp_path, jl.ResumeHook(), _two_nodes(), catalog, jl.ResumableRunner(), others=[_Refuses()])
    assert not list(_runs_dir(tmp_path).iterdir())  # was: <key>.json and a stale <key>.lock

    # a killed run's journal, still to resume, is kept: only its lock goes
    killed = jl.RunJournal.open(_runs_dir(tmp_path), jl.run_key("test", ["a", "b"], {}), "s-killed")
    killed.node_done("a", {"mem": None})
    killed.release()
    with pytest.raises(RuntimeError, match="missing upstream"):
        _session(tmp_path, jl.ResumeHook(), _two_nodes(), catalog, jl.ResumableRunner(), others=[_Refuses()])
    assert [p.name for p in _runs_dir(tmp_path).iterdir()] == [killed.path.name]


def test_a_failed_run_gives_one_recovery_hint_and_releases_the_lock_even_if_a_hook_fails(tmp_path, caplog):
    """Kedro's runner suggested ``--from-nodes "a"`` and the project "rerun the same command": one
    hint now, the project's (the journal skips a). A tracking hook failing in its own
    ``on_pipeline_error`` (a lost MLflow store) used to leave the lock behind."""
    hook = jl.ResumeHook()
    with caplog.at_level("INFO"), pytest.raises(OSError, match="no such table"):
        _session(tmp_path, hook, _two_nodes(), DataCatalog({"raw": MemoryDataset(1)}), jl.ResumableRunner(),
                 others=[_FailsOnError()])
    assert "--from-nodes" not in caplog.text
    assert caplog.text.count("rerun the same command") == 1
    assert "1 of 2 nodes of this run are done; fix the cause, then rerun the same command to resume" in caplog.text
    assert [p.suffix for p in _runs_dir(tmp_path).iterdir()] == [".json"] and hook.journal is None

    caplog.clear()  # a bare runner, no journal: Kedro's own hint is the right one
    with caplog.at_level("WARNING"), pytest.raises(RuntimeError, match="boom"):
        jl.ResumableRunner().run(_two_nodes(), DataCatalog({"raw": MemoryDataset(1)}))
    assert '--from-nodes "a"' in caplog.text and "rerun the same command" not in caplog.text


@pytest.mark.parametrize("how, said", [("interrupt", "SIGINT (Ctrl-C)"), ("sigterm", "SIGTERM")])
def test_an_interrupted_run_keeps_its_journal_releases_the_lock_and_says_how_to_resume(tmp_path, caplog, how, said):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with caplog.at_level("INFO"), pytest.raises(jl.RunInterrupted) as raised:
        _session(tmp_path, jl.ResumeHook(), _two_nodes(how), DataCatalog({"raw": MemoryDataset(1)}),
                 jl.ResumableRunner())
    message = str(raised.value)
    assert f"run interrupted by {said} with 1 node done; rerun the same command to resume" in message
    assert isinstance(raised.value.__cause__, KeyboardInterrupt)
    assert "rerun the same command" not in caplog.text and "--from-nodes" not in caplog.text  # said once
    assert [p.suffix for p in _runs_dir(tmp_path).iterdir()] == [".json"]  # the journal, no lock
    assert signal.getsignal(signal.SIGTERM) == before  # SIGTERM is an interruption only during the run


def test_a_pinned_run_is_not_resumed_by_the_same_command_without_the_pin(tmp_path, caplog):
    """A killed run pinned with --load-versions, rerun without the pin, was announced as "resuming
    the killed run" and retrained on another parent. The pins are part of the journal's key."""
    catalog = DataCatalog({"raw": MemoryDataset(1)})
    pin = {"sft.stage2.policy": "2026-01-01T00.00.00.000Z"}
    with pytest.raises(RuntimeError, match="boom"):
        _session(tmp_path, jl.ResumeHook(), _two_nodes(), catalog, jl.ResumableRunner(), load_versions=pin)
    pinned = next(_runs_dir(tmp_path).iterdir())
    assert pinned.stem == jl.run_key("test", ["a", "b"], {}, pin)

    hook = jl.ResumeHook()
    with caplog.at_level("INFO"), pytest.raises(RuntimeError, match="boom"):
        _session(tmp_path, hook, _two_nodes(), catalog, jl.ResumableRunner())
    assert "resuming the killed run" not in caplog.text
    assert pinned.exists()  # still there for the pinned command

    caplog.clear()
    with caplog.at_level("INFO"), pytest.raises(RuntimeError, match="boom"):
        _session(tmp_path, jl.ResumeHook(), _two_nodes(), catalog, jl.ResumableRunner(), load_versions=pin)
    assert "resuming the killed run" in caplog.text


def test_a_run_of_kedros_own_runner_keeps_kedros_hint_alone(tmp_path, caplog):
    """``--runner SequentialRunner`` does not read the journal: rerunning the same command would not
    resume, so the project's hint is not given beside Kedro's ``--from-nodes``."""
    import types

    hook = jl.ResumeHook()
    hook.after_context_created(types.SimpleNamespace(project_path=tmp_path, env="test"))
    params = {"session_id": "s", "runner": "<kedro.runner.sequential_runner.SequentialRunner object at 0x1>"}
    hook.before_pipeline_run(params, _two_nodes(), DataCatalog({"raw": MemoryDataset(1)}))
    hook.journal.node_done("a", {"mem": None})
    with caplog.at_level("INFO"):
        hook.on_pipeline_error(RuntimeError("boom"))
    assert "rerun the same command" not in caplog.text
    assert [p.suffix for p in _runs_dir(tmp_path).iterdir()] == [".json"]  # kept for the default runner
