"""The MLflow run hierarchy: one parent run per ``kedro run``, one child run per cascade stage.

Why not kedro-mlflow: it opens a single run per ``kedro run`` and logs typed parameters as one
repr string; Cascade RL needs one run per stage (to compare stages side by side in the MLflow UI)
under a parent that ties one cascade together. :class:`StageTrackingHook` does exactly that:

* ``before_pipeline_run`` opens the parent run (tags: pipeline, env, session, pinned versions);
* every node belongs to a stage (:func:`~nemotron_cascade.tracking.stages.stage_of`); around each
  node the stage's child run is made active, so ``tracking.log_metrics`` inside the library loops
  lands there, and the node's ``params:`` inputs are logged as flat, redacted parameters;
* a stage's child run ends when the last node of that stage in this run has saved its outputs
  (it starts with the stage's first node, which for an RL stage is its early prompt selection, so
  the metric ``stage_seconds`` sums the time of the stage's own nodes); it records its place in the
  cascade (tag ``cascade.position``, param and metric ``cascade_position``) so that MLflow's
  tables, charts and compare view can order the stages;
* every checkpoint read or written is tagged on the stage run (``read.<dataset>`` /
  ``wrote.<dataset>`` = version), and the checkpoint's own ``lineage.json`` names the run;
* the datasets named in ``parent_artifacts`` (the cascade matrix as an MLflow table, its heatmap)
  are logged on the parent run once saved.

A resumed run continues the killed run's parent and child runs: the ids come from a
:class:`RunStore` (the run journal's :class:`~nemotron_cascade.journal.ResumeHook`). If those runs
are gone (the store was deleted or reset, the runs deleted), the training state resumes into new
runs, said in a warning and tagged ``kedro.resumed_from_run`` on the new parent. A failed run ends
its open runs FAILED; an interrupted one (Ctrl-C, SIGTERM) ends them KILLED.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from kedro.framework.hooks import hook_impl

from nemotron_cascade import numerics
from nemotron_cascade.tracking.redaction import flatten
from nemotron_cascade.tracking.stages import cascade_order, position, stage_of, stage_positions

log = logging.getLogger(__name__)

POSITION_TAG = "cascade.position"
POSITION_KEY = "cascade_position"  # the param and the metric
BUSY_KEY = "stage_seconds"  # the wall time of the stage's own nodes, summed
# dataset -> artifact file on the parent run: the matrix as a table (a JSON the UI shows as one), its heatmap
PARENT_ARTIFACTS = {"cascade_matrix": "cascade_matrix.json", "cascade_matrix_md": "cascade_matrix.md",
                    "cascade_matrix_plot": "cascade_matrix.png"}


class RunStore(Protocol):
    """Keeps a run's MLflow ids so that a resumed run continues them, and knows which nodes will run."""

    def mlflow_runs(self) -> dict:
        """``{"parent": id, "children": {stage: id}}`` of the killed run being resumed, else ``{}``."""

    def record_mlflow_runs(self, parent: str, children: dict[str, str]) -> None:
        """Remember this run's MLflow ids."""

    def nodes_to_run(self, pipeline) -> set[str]:
        """The names of the nodes of ``pipeline`` that this run will execute."""


@contextmanager
def store_init_lock(uri: str):
    """Hold an exclusive ``flock`` on ``<db>.init.lock`` beside a sqlite store (no-op for others).

    MLflow creates and migrates the tables of a new sqlite database on first use, with no lock:
    two ``kedro run`` processes starting at once on a fresh ``mlflow.db`` fail with ``duplicate
    column name`` or an alembic ``CommandError``, and two finding no experiment would both create
    it. Once the tables and the experiment exist, sqlite's own locking (MLflow sets
    ``busy_timeout`` to 20 s) serialises the writes of concurrent runs.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tracking_settings(context) -> dict:
    """The ``tracking`` block of the project's ``mlflow`` configuration (``{}`` without one)."""
    try:
        conf = context.config_loader["mlflow"]
    except Exception:  # no mlflow.yml: tracking off
        conf = {}
    return conf.get("tracking", conf) if isinstance(conf, dict) else {}


def _absolute_uri(uri: str, project_path) -> str:
    """A relative ``sqlite:///`` store resolved against the project, so any working directory finds it."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(project_path) / uri[len("sqlite:///"):])
    return uri


def session_of(run_params: dict) -> str:
    """The Kedro session of a run: ``run_id`` in Kedro 1's run parameters (``session_id`` before)."""
    return str(run_params.get("run_id") or run_params.get("session_id"))


def parent_tags(run_params: dict, env: str) -> dict[str, str]:
    """Tags of a parent run: the pipelines, environment, session, pinned versions and numerics."""
    names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    return {"kedro.pipeline": ",".join(map(str, names)), "kedro.env": str(env),
            "kedro.session_id": session_of(run_params),
            "kedro.load_versions": str(run_params.get("load_versions") or {}),
            **numerics.tags()}


class StageTrackingHook:
    """MLflow parent/child runs per ``kedro run`` and per stage (see module docstring)."""

    def __init__(self, run_store: RunStore | None = None, parent_artifacts: dict[str, str] | None = None):
        self._store = run_store
        self._parent_artifacts = dict(PARENT_ARTIFACTS if parent_artifacts is None else parent_artifacts)
        self._enabled = False
        self._client = None
        self._experiment_id = None
        self._env = "base"
        self._reset(None)

    def _reset(self, parent: str | None, children: dict[str, str] | None = None) -> None:
        """Forget the previous run's state; ``parent``/``children`` are this run's MLflow runs."""
        self._parent, self._children = parent, dict(children or {})
        self._open: set[str] = set()  # stages whose child run this process opened and has not ended
        self._stage_nodes: dict[str, set[str]] = {}  # stage -> its nodes still to finish in this run
        self._unsaved: dict[str, set[str]] = {}  # node -> its outputs not saved yet
        self._started: dict[str, float] = {}  # node -> when it started
        self._busy: dict[str, float] = {}  # stage -> seconds its nodes took so far
        self._positions: dict[str, float] = {}
        self._order: list[str] = []

    @hook_impl
    def after_context_created(self, context) -> None:
        """Point MLflow at the project's store and find (or create) the experiment."""
        settings = tracking_settings(context)
        self._enabled = bool(settings.get("enabled", False)) and os.environ.get("NEMOTRON_CASCADE_NO_MLFLOW") != "1"
        if not self._enabled:
            return
        import mlflow

        uri = _absolute_uri(settings.get("tracking_uri", "sqlite:///mlflow.db"), context.project_path)
        mlflow.set_tracking_uri(uri)
        name = settings.get("experiment_name", "nemotron-cascade")
        with store_init_lock(uri):  # two runs starting on a fresh mlflow.db would both create its tables
            self._client = mlflow.MlflowClient(uri)  # opens the store: creates the tables if new
            exp = self._client.get_experiment_by_name(name)
            self._experiment_id = exp.experiment_id if exp else self._client.create_experiment(name)
        self._env = context.env or "base"

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        """Open the parent run (or reopen the killed run's) and note each stage's nodes to run."""
        if not self._enabled:
            return
        import mlflow

        previous = self._store.mlflow_runs() if self._store is not None else {}
        if previous.get("parent") and self._exists(previous["parent"]):  # continue the killed run's runs
            parent = mlflow.start_run(run_id=previous["parent"])
            self._client.set_tag(parent.info.run_id, "kedro.resumed_by_session", session_of(run_params))
            self._reset(parent.info.run_id, {s: r for s, r in previous.get("children", {}).items() if self._exists(r)})
        else:
            tags = parent_tags(run_params, self._env)
            if previous.get("parent"):  # the killed run's runs are gone: its training state goes on in new ones
                log.warning("the MLflow runs of the run being resumed (parent run %s) are not in the tracking "
                            "store %s (deleted, or the store was reset): resuming its training state into new "
                            "MLflow runs", previous["parent"], self._client.tracking_uri)
                tags["kedro.resumed_from_run"] = previous["parent"]
            parent = mlflow.start_run(experiment_id=self._experiment_id, run_name=tags["kedro.pipeline"], tags=tags)
            self._reset(parent.info.run_id)
        nodes = list(pipeline.nodes) if pipeline is not None else []
        to_run = self._store.nodes_to_run(pipeline) if self._store is not None and nodes else {n.name for n in nodes}
        for n in nodes:
            if n.name in to_run:
                self._stage_nodes.setdefault(stage_of(n), set()).add(n.name)
        self._order = cascade_order()
        self._positions = stage_positions(nodes, self._order)
        self._record()

    def _exists(self, run_id: str) -> bool:
        """Whether ``run_id`` is a live run of the tracking store (not lost with a reset store, not deleted)."""
        try:
            return self._client.get_run(run_id).info.lifecycle_stage != "deleted"
        except Exception as exc:  # MlflowException RESOURCE_DOES_NOT_EXIST
            log.debug("MLflow run %s not found: %s", run_id, exc)
            return False

    def _record(self) -> None:
        if self._store is not None:
            self._store.record_mlflow_runs(self._parent, self._children)

    def _child(self, stage: str) -> str:
        """The stage's child run, created (with its cascade position) on first use."""
        if stage not in self._children:
            pos = self._positions.get(stage, position(stage, self._order))
            run = self._client.create_run(self._experiment_id, run_name=stage, tags={
                "mlflow.parentRunId": self._parent, "stage": stage, POSITION_TAG: f"{pos:g}"})
            self._client.log_param(run.info.run_id, POSITION_KEY, f"{pos:g}")
            self._client.log_metric(run.info.run_id, POSITION_KEY, pos, step=0)
            self._children[stage] = run.info.run_id
            self._open.add(stage)
            self._record()
        return self._children[stage]

    @hook_impl
    def before_node_run(self, node, inputs: dict) -> None:
        """Make the node's stage run active and log the node's parameters on it."""
        if not self._enabled or self._parent is None:
            return
        import mlflow

        stage = stage_of(node)
        mlflow.start_run(run_id=self._child(stage), nested=True)
        self._open.add(stage)
        self._started[node.name] = time.monotonic()
        params = {}
        for name, value in inputs.items():
            if name.startswith("params:"):
                flatten(name[len("params:"):], value, params)
        for key, value in params.items():
            try:
                mlflow.log_param(key, value)
            except Exception as exc:  # the same key with another value (a rerun node): keep the first
                log.debug("param %s not logged: %s", key, exc)

    @hook_impl
    def after_node_run(self, node) -> None:
        """Leave the stage run, still running; the node is finished once its outputs are saved."""
        run_id = self._end_active_child()
        if not self._enabled or self._parent is None:
            return
        if run_id is not None:  # mlflow.end_run marked it finished: the stage goes on until its last node
            self._client.update_run(run_id, status="RUNNING")
        if node.outputs:
            self._unsaved[node.name] = set(node.outputs)
        else:
            self._node_finished(node)

    @hook_impl
    def on_node_error(self, node) -> None:
        """Leave the stage run as failed (the whole run's end marks the stage failed)."""
        self._end_active_child(status="FAILED")

    def _end_active_child(self, status: str = "FINISHED") -> str | None:
        """Pop the active stage run off MLflow's stack (which ends it with ``status``); its id."""
        if not self._enabled or self._parent is None:
            return None
        import mlflow

        active = mlflow.active_run()
        if active is None or active.info.run_id == self._parent:
            return None
        mlflow.end_run(status=status)
        return active.info.run_id

    def _node_finished(self, node) -> None:
        """Add the node's time to its stage's; end the stage run when no node of the stage is left."""
        stage = stage_of(node)
        started = self._started.pop(node.name, None)
        if started is not None and stage in self._children:
            run_id = self._children[stage]
            if stage not in self._busy:  # a stage reopened on resume continues the killed run's sum
                self._busy[stage] = self._client.get_run(run_id).data.metrics.get(BUSY_KEY, 0.0)
            self._busy[stage] += time.monotonic() - started
            self._client.log_metric(run_id, BUSY_KEY, round(self._busy[stage], 3), step=0)
        left = self._stage_nodes.get(stage, set())
        left.discard(node.name)
        if not left and stage in self._open:
            self._client.set_terminated(self._children[stage], status="FINISHED")
            self._open.discard(stage)

    def _tag_checkpoint(self, kind: str, dataset_name: str, data, node) -> None:
        from nemotron_cascade.datasets.checkpoint import Checkpoint

        if not self._enabled or self._parent is None or not isinstance(data, Checkpoint) or node is None:
            return
        run_id = self._child(stage_of(node))
        self._client.set_tag(run_id, f"{kind}.{dataset_name}", str(data.lineage.get("version")))
        if kind == "read" and data.lineage.get("mlflow_run_id"):
            self._client.set_tag(run_id, f"read.{dataset_name}.run_id", data.lineage["mlflow_run_id"])

    def _log_on_parent(self, dataset_name: str, data) -> None:
        """Log a saved dataset named in ``parent_artifacts`` on the parent run: a table, a figure or text."""
        artifact = self._parent_artifacts.get(dataset_name)
        if artifact is None or not self._enabled or self._parent is None:
            return
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            self._client.log_table(self._parent, data, artifact)
        elif hasattr(data, "savefig"):
            self._client.log_figure(self._parent, data, artifact)
        elif isinstance(data, str):
            self._client.log_text(self._parent, data, artifact)
        else:
            log.warning("dataset %s is not a table, a figure or text: not logged on the parent run", dataset_name)

    def _log_stage_figure(self, dataset_name: str, data, node) -> None:
        """A figure a stage's node saved (its GRPO curves, ``<stage>.curves``) also goes on the
        stage's run, as ``<dataset name>.png``, where MLflow shows it beside the stage's metrics."""
        if not self._enabled or self._parent is None or node is None or not hasattr(data, "savefig"):
            return
        if dataset_name in self._parent_artifacts:
            return
        self._client.log_figure(self._child(stage_of(node)), data, f"{dataset_name.replace('.', '_')}.png")

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data, node) -> None:
        """Tag a checkpoint the node read on its stage run."""
        self._tag_checkpoint("read", dataset_name, data, node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:
        """Tag a written checkpoint, log parent artifacts, end the stage once its last node saved all."""
        self._tag_checkpoint("wrote", dataset_name, data, node)
        self._log_on_parent(dataset_name, data)
        self._log_stage_figure(dataset_name, data, node)
        if node is None or node.name not in self._unsaved:
            return
        left = self._unsaved[node.name]
        left.discard(dataset_name)
        if not left:
            del self._unsaved[node.name]
            self._node_finished(node)

    @hook_impl
    def after_pipeline_run(self) -> None:
        """End the runs still open as finished."""
        self._close("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error: BaseException | None = None) -> None:
        """End the runs still open as failed, or as killed if the run was interrupted (Ctrl-C, SIGTERM);
        stages that finished keep their status."""
        self._close("KILLED" if interrupted(error) else "FAILED")

    def _close(self, status: str) -> None:
        """End the stage runs still open and the parent with ``status``; a store that fails is only logged,
        so that the run's own error is the one the user sees."""
        if not self._enabled or self._parent is None:
            return
        import mlflow

        try:
            for stage in sorted(self._open):
                self._client.set_terminated(self._children[stage], status=status)
            while mlflow.active_run() is not None:
                mlflow.end_run(status=status)
        except Exception as exc:
            log.warning("could not mark this run's MLflow runs %s (parent run %s): %s", status, self._parent, exc)
        finally:
            self._reset(None)


def interrupted(error: BaseException | None) -> bool:
    """Whether a run's error is an interruption: a ``KeyboardInterrupt``, or an error raised from one
    (:class:`~nemotron_cascade.journal.RunInterrupted`)."""
    return isinstance(error, KeyboardInterrupt) or isinstance(getattr(error, "__cause__", None), KeyboardInterrupt)
