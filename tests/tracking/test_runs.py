"""The MLflow run hierarchy, driven by Kedro's own runner and hook manager on a sqlite store.

Each stage's child run must end when its last node has saved its outputs (not when the whole run
ends), carry its place in the cascade, and the parent run must carry the matrix and its heatmap.
"""

from __future__ import annotations

import time
import types

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from nemotron_cascade.tracking.runs import BUSY_KEY, POSITION_KEY, POSITION_TAG, StageTrackingHook

PAUSE_S = 0.4


def _first(x):
    return x


def _slow(x, _after):
    time.sleep(PAUSE_S)
    return x


def _matrix(*metrics):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame({"stage": ["base", "sft"], "math": [0.1, 0.5]})
    fig, ax = plt.subplots()
    ax.imshow([[0.1], [0.5]])
    return table, "| stage | math |", fig


def _pipeline() -> Pipeline:
    """base (two nodes) -> sft.stage1 (slow) -> evaluation of both -> the matrix report.

    sft.stage1's slow node waits for base's evaluation, so base's child must end before it runs.
    """
    return Pipeline([
        node(_first, "raw", "base.tokenizer", name="train_tokenizer", namespace="base"),
        node(_first, "base.tokenizer", "base.policy", name="pretrain", namespace="base"),
        node(_slow, ["base.policy", "evaluation.base.metrics"], "sft.stage1.policy", name="train",
             namespace="sft.stage1"),
        node(_first, "base.policy", "evaluation.base.metrics", name="evaluate", namespace="evaluation.base"),
        node(_first, "sft.stage1.policy", "evaluation.sft.stage1.metrics", name="evaluate",
             namespace="evaluation.sft.stage1"),
        node(_first, "sft.stage1.policy", "reward_model.model", name="train_rm", namespace="reward_model"),
        node(_matrix, ["evaluation.base.metrics", "evaluation.sft.stage1.metrics"],
             ["cascade_matrix", "cascade_matrix_md", "cascade_matrix_plot"], name="report_matrix",
             tags=["stage.report"]),
    ])


class FakeStore:
    """A run store as the ResumeHook is one: previous runs to continue, the nodes that will run."""

    def __init__(self, previous=None, to_run=None):
        self.previous, self.to_run, self.recorded = previous or {}, to_run, None

    def mlflow_runs(self):
        return self.previous

    def record_mlflow_runs(self, parent, children):
        self.recorded = {"parent": parent, "children": dict(children)}

    def nodes_to_run(self, pipeline):
        return self.to_run if self.to_run is not None else {n.name for n in pipeline.nodes}


@pytest.fixture()
def tracked(tmp_path, monkeypatch):
    """``run(pipeline, store)``: one tracked kedro-like run; returns the client and the hook's store."""
    import mlflow

    monkeypatch.delenv("NEMOTRON_CASCADE_NO_MLFLOW", raising=False)
    monkeypatch.chdir(tmp_path)
    previous_uri = mlflow.get_tracking_uri()
    context = types.SimpleNamespace(project_path=tmp_path, env="test", config_loader={"mlflow": {"tracking": {
        "enabled": True, "tracking_uri": "sqlite:///mlflow.db", "experiment_name": "runs"}}})

    def run(pipeline, store, fail=False, data=None, runner=None, hook_of=None):
        hook = StageTrackingHook(run_store=store)
        if hook_of is not None:
            hook_of(hook)
        manager = _create_hook_manager()
        manager.register(hook)
        manager.hook.after_context_created(context=context)
        catalog = DataCatalog({name: MemoryDataset(v) for name, v in (data or {"raw": 1}).items()})
        params = {"session_id": "s", "pipeline_names": ["cascade"]}
        manager.hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
        try:
            (runner or SequentialRunner()).run(pipeline, catalog, manager)
        except Exception as error:
            manager.hook.on_pipeline_error(error=error, run_params=params, pipeline=pipeline, catalog=catalog)
            if not fail:
                raise
        else:
            manager.hook.after_pipeline_run(run_params=params, run_result={}, pipeline=pipeline, catalog=catalog)
        return mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")

    yield run
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous_uri)


def _children(client, parent):
    runs = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    return {r.data.tags["stage"]: r for r in runs}


def test_each_stage_run_ends_when_its_last_node_has_saved_its_outputs(tracked):
    store = FakeStore()
    client = tracked(_pipeline(), store)
    parent = client.get_run(store.recorded["parent"])
    children = _children(client, parent.info.run_id)
    assert set(children) == {"base", "sft.stage1", "reward_model", "report"}
    assert all(c.info.status == "FINISHED" for c in children.values()) and parent.info.status == "FINISHED"
    base, sft = children["base"].info, children["sft.stage1"].info
    # base's evaluation, its last node, runs before sft.stage1's slow training: base ends then, not
    # with the whole run (as it did when every child ended with the parent); sft.stage1 lasts its node
    assert base.end_time <= sft.start_time + 50
    assert sft.end_time - base.end_time >= PAUSE_S * 1000 * 0.9
    assert parent.info.end_time - base.end_time >= PAUSE_S * 1000 * 0.9
    # the time of a stage's own nodes, whatever ran between them
    assert children["sft.stage1"].data.metrics[BUSY_KEY] >= PAUSE_S * 0.9 > children["base"].data.metrics[BUSY_KEY]
    assert children["report"].info.end_time <= parent.info.end_time


def test_each_stage_run_records_its_place_in_the_cascade(tracked):
    store = FakeStore()
    client = tracked(_pipeline(), store)
    children = _children(client, store.recorded["parent"])
    # base and sft.stage1 are the first two of the cascade; the reward model reads sft.stage1's policy
    # here, so it sits half a step after it; the report reads the evaluations of both
    expected = {"base": 1, "sft.stage1": 2, "reward_model": 2.5, "report": 2.5}
    for stage, pos in expected.items():
        run = children[stage].data
        assert run.tags[POSITION_TAG] == f"{pos:g}" and run.params[POSITION_KEY] == f"{pos:g}", stage
        assert run.metrics[POSITION_KEY] == pos, stage


def test_the_parent_run_carries_the_matrix_table_and_heatmap(tracked):
    store = FakeStore()
    client = tracked(_pipeline(), store)
    parent = store.recorded["parent"]
    files = {a.path for a in client.list_artifacts(parent)}
    assert {"cascade_matrix.json", "cascade_matrix.md", "cascade_matrix.png"} <= files
    table = client.load_table(client.get_run(parent).info.experiment_id, "cascade_matrix.json", run_ids=[parent])
    assert list(table["stage"]) == ["base", "sft"] and list(table["math"]) == [0.1, 0.5]
    png = client.download_artifacts(parent, "cascade_matrix.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "cascade_matrix.json" not in {a.path for a in client.list_artifacts(_children(client, parent)["report"]
                                                                                 .info.run_id)}


def test_a_resumed_run_continues_the_killed_runs_and_ends_only_what_it_reopened(tracked):
    first = FakeStore()
    client = tracked(_pipeline(), first)
    before = _children(client, first.recorded["parent"])
    # as if the killed run had finished base and the reward model: the resumed run reruns the rest
    to_run = {"sft.stage1.train", "evaluation.sft.stage1.evaluate", "report_matrix"}
    resumed = FakeStore(previous=first.recorded, to_run=to_run)
    pipeline = _pipeline().filter(node_names=sorted(to_run))
    client = tracked(pipeline, resumed, data={"base.policy": 1, "evaluation.base.metrics": 1})
    assert resumed.recorded["parent"] == first.recorded["parent"]
    after = _children(client, first.recorded["parent"])
    assert {s: r.info.run_id for s, r in after.items()} == {s: r.info.run_id for s, r in before.items()}
    for stage in ("base", "reward_model"):  # not touched again: their end is the first run's
        assert after[stage].info.end_time == before[stage].info.end_time
    assert after["sft.stage1"].info.end_time > before["sft.stage1"].info.end_time
    # its summed node time continues the killed run's: the slow node ran once in each
    assert after["sft.stage1"].data.metrics[BUSY_KEY] >= before["sft.stage1"].data.metrics[BUSY_KEY] + PAUSE_S * 0.9


def test_a_failed_run_fails_only_the_stages_left_open(tracked):
    def boom(x):
        raise RuntimeError("boom")

    store = FakeStore()
    pipeline = Pipeline([
        node(_first, "raw", "base.policy", name="pretrain", namespace="base"),
        node(boom, "base.policy", "sft.stage1.policy", name="train", namespace="sft.stage1"),
    ])
    client = tracked(pipeline, store, fail=True)
    children = _children(client, store.recorded["parent"])
    assert children["base"].info.status == "FINISHED" and children["sft.stage1"].info.status == "FAILED"
    assert client.get_run(store.recorded["parent"]).info.status == "FAILED"


def test_a_stage_run_stays_running_between_its_nodes(tracked):
    seen = []

    def look(x):  # a node of another stage, between the two nodes of stage a
        import mlflow

        (a,) = mlflow.search_runs(filter_string="tags.stage = 'a'", search_all_experiments=True, output_format="list")
        seen.append(a.info.status)
        return x

    store = FakeStore()
    pipeline = Pipeline([
        node(_first, "raw", "a.one", name="first", namespace="a"),
        node(look, "a.one", "b.out", name="look", namespace="b"),
        node(_first, "b.out", "a.two", name="second", namespace="a"),
    ])
    client = tracked(pipeline, store)
    assert seen == ["RUNNING"]
    assert _children(client, store.recorded["parent"])["a"].info.status == "FINISHED"


def _curves(_policy):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0.1, 0.4, 0.6])
    return fig


def test_a_figure_a_stage_saves_goes_on_its_stage_run(tracked):
    """The RL stages' curves are a catalogued figure (``<stage>.curves``); the hook logs it on the
    stage's own run, where the MLflow UI shows it beside the stage's metrics — not on the parent."""
    pipeline = Pipeline([node(_first, "raw", "math_rl.policy", name="train_grpo", namespace="math_rl"),
                         node(_curves, "math_rl.policy", "math_rl.curves", name="plot_curves", namespace="math_rl")])
    store = FakeStore()
    client = tracked(pipeline, store)
    parent = store.recorded["parent"]
    stage_run = _children(client, parent)["math_rl"].info.run_id
    assert "math_rl_curves.png" in {a.path for a in client.list_artifacts(stage_run)}
    assert open(client.download_artifacts(stage_run, "math_rl_curves.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "math_rl_curves.png" not in {a.path for a in client.list_artifacts(parent)}


def test_an_interrupted_run_marks_its_open_runs_killed(tracked):
    """Ctrl-C in a node: the interrupted stage and the parent end KILLED (they were left RUNNING, or
    FINISHED by MLflow's exit handler, at 14 of 300 steps); a stage that finished stays FINISHED."""
    from nemotron_cascade.journal import ResumableRunner, RunInterrupted

    def ctrl_c(x):
        raise KeyboardInterrupt

    store = FakeStore()
    pipeline = Pipeline([
        node(_first, "raw", "base.policy", name="pretrain", namespace="base"),
        node(ctrl_c, "base.policy", "sft.stage1.policy", name="train", namespace="sft.stage1"),
    ])
    with pytest.raises(RunInterrupted, match="interrupted by SIGINT"):
        tracked(pipeline, store, runner=ResumableRunner())
    import mlflow

    client = mlflow.MlflowClient(mlflow.get_tracking_uri())
    children = _children(client, store.recorded["parent"])
    assert children["base"].info.status == "FINISHED" and children["sft.stage1"].info.status == "KILLED"
    assert client.get_run(store.recorded["parent"]).info.status == "KILLED"
    assert mlflow.active_run() is None


def test_a_resumed_run_whose_mlflow_runs_are_gone_continues_in_new_runs(tracked, caplog):
    """The store was deleted or reset while a journal was pending: every rerun failed in
    ``mlflow.start_run(run_id=...)`` with ``Run with id=... not found``. Now the run goes on in new
    runs and says so; a child that is gone is recreated, one that exists is continued."""
    first = FakeStore()
    client = tracked(_pipeline(), first)
    kept = first.recorded["children"]["base"]
    gone = {"parent": "0" * 32, "children": {"base": kept, "sft.stage1": "1" * 32}}
    to_run = {"sft.stage1.train", "evaluation.sft.stage1.evaluate", "report_matrix"}
    resumed = FakeStore(previous=gone, to_run=to_run)
    with caplog.at_level("WARNING", logger="nemotron_cascade.tracking.runs"):
        client = tracked(_pipeline().filter(node_names=sorted(to_run)), resumed,
                         data={"base.policy": 1, "evaluation.base.metrics": 1})
    assert "resuming its training state into new MLflow runs" in caplog.text and "0" * 32 in caplog.text
    parent = client.get_run(resumed.recorded["parent"])
    assert parent.info.run_id != gone["parent"] and parent.info.status == "FINISHED"
    assert parent.data.tags["kedro.resumed_from_run"] == gone["parent"]
    children = resumed.recorded["children"]
    assert children["sft.stage1"] != gone["children"]["sft.stage1"]  # recreated under the new parent
    assert _children(client, parent.info.run_id)["sft.stage1"].info.status == "FINISHED"


def _lost(*args, **kwargs):
    raise OSError("no such table: runs")


def test_a_tracking_store_failing_at_the_end_of_a_failed_run_does_not_hide_the_runs_error(tracked, caplog):
    def boom(x):
        raise RuntimeError("the node's own error")

    class LostStore(FakeStore):  # the store vanishes mid-run: ending the runs fails too
        def record_mlflow_runs(self, parent, children):
            super().record_mlflow_runs(parent, children)
            self.hook._client.set_terminated = _lost

    store = LostStore()
    pipeline = Pipeline([node(boom, "raw", "sft.stage1.policy", name="train", namespace="sft.stage1")])
    with caplog.at_level("WARNING", logger="nemotron_cascade.tracking.runs"):
        with pytest.raises(RuntimeError, match="the node's own error"):
            tracked(pipeline, store, hook_of=lambda hook: setattr(store, "hook", hook))
    assert "could not mark this run's MLflow runs FAILED" in caplog.text and "no such table" in caplog.text
