"""Resume a killed ``kedro run`` where it stopped: a run journal, a hook that writes it, a runner that reads it.

A cascade run takes many minutes (hours at scale); a kill (OOM, pre-emption, Ctrl-C, ``kill -9``)
must not cost the finished stages. Kedro's ``--only-missing-outputs`` is not enough: it asks whether
a dataset *exists*, and versioned checkpoints of an *older* complete run exist too, so it would skip
stages the killed run never reached. The journal answers the right question, "did *this* run
finish that node?":

* :class:`ResumeHook` opens ``data/09_tracking/runs/<key>.json`` before the run. The key hashes the
  environment, the nodes selected and every parameter, so the same command with the same
  configuration finds the journal of its killed predecessor, and anything else starts afresh.
  A node is written as done once *all* its outputs are saved (never on ``after_node_run``, which
  comes before the saves), with the version of each versioned output. The file is replaced
  atomically after each node; a successful run deletes it, a failed or killed one leaves it.
* :class:`ResumableRunner` (the default of this project's ``kedro run``, see ``cli.py``) drops the
  done nodes, keeps a done node whose in-memory output a remaining node needs, and pins every
  versioned output of the done nodes to the version the killed run wrote, so the remaining stages
  read exactly those checkpoints even if another run saved newer ones in between.
* The MLflow parent and stage runs of the killed run are recorded too, and the tracking hook
  reopens them, so the resumed stage's curve continues in the same run instead of starting a new one.
* Inside the interrupted stage the trainers resume from their last mid-stage checkpoint (their
  fingerprint includes the parent checkpoint version, which the pinning keeps equal). They keep
  the state after their last step too, and this hook removes a node's resume directory (a
  ``params:*resume_dir`` input, or the ``resume_dir`` in the lineage of a checkpoint it saved) only
  once all the node's outputs are saved, so a kill between the last step and the save costs nothing.

No module global ties them: the :class:`ResumeHook` registered in ``settings.py`` owns the journal;
the runner finds that hook among the plugins of the session's hook manager, and the tracking hook
is handed it in ``settings.py`` (it is the tracking hook's
:class:`~nemotron_cascade.tracking.runs.RunStore`).

``NEMOTRON_CASCADE_RESUME=0`` turns resuming off (the journal is still written).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.runner import SequentialRunner

from nemotron_cascade.training import resume as resume_state

log = logging.getLogger(__name__)

JOURNAL_DIR = Path("data/09_tracking/runs")


def run_key(env: str, node_names, parameters: dict) -> str:
    """Hash of what makes two runs the same run: environment, selected nodes, every parameter."""
    blob = json.dumps({"env": env, "nodes": sorted(node_names), "parameters": parameters},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunInProgressError(RuntimeError):
    """Another live ``kedro run`` holds the journal of the same configuration."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lock(path: Path) -> None:
    """Take ``path`` (a lock file holding our pid); a lock left by a dead process is taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise RunInProgressError(
                    f"another kedro run with the same configuration is running (pid {pid}, lock {path}); "
                    "wait for it to finish, or stop it, before running this one") from None
            path.unlink(missing_ok=True)  # stale: its process is gone (killed)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return
    raise RunInProgressError(f"could not take the run lock {path}")


class RunJournal:
    """The done nodes (with output versions) and MLflow runs of one ``kedro run``; see module docstring.

    While a run is in progress its journal is locked (``<key>.lock`` with the pid): a second
    ``kedro run`` of the same configuration at the same time is refused instead of sharing it.
    """

    def __init__(self, path: Path, data: dict, resumed: bool):
        self.path, self.data, self.resumed = Path(path), data, resumed

    @classmethod
    def open(cls, directory: Path, key: str, session_id: str, allow_resume: bool = True) -> RunJournal:
        path = Path(directory) / f"{key}.json"
        _lock(path.with_suffix(".lock"))
        if allow_resume and path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("unreadable run journal %s (%s): starting a fresh run", path, exc)
            else:
                if data.get("done"):
                    return cls(path, data, resumed=True)
        data = {"key": key, "session_id": session_id, "started": time.time(), "done": {}, "mlflow": {}}
        journal = cls(path, data, resumed=False)
        journal.write()
        return journal

    # -- recording ---------------------------------------------------------------------------
    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def node_done(self, node_name: str, versions: dict[str, str | None]) -> None:
        self.data["done"][node_name] = versions
        self.write()

    def set_mlflow(self, parent: str, children: dict[str, str]) -> None:
        self.data["mlflow"] = {"parent": parent, "children": dict(children)}
        self.write()

    def finish(self) -> None:
        """The run succeeded: remove the journal and its lock."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Drop the lock, keep the journal (a failed run, to be resumed)."""
        self.path.with_suffix(".lock").unlink(missing_ok=True)

    # -- resuming ----------------------------------------------------------------------------
    @property
    def done(self) -> dict[str, dict]:
        return self.data["done"]

    def remaining_nodes(self, pipeline, catalog) -> list[str]:
        """The names of the nodes of ``pipeline`` still to run: those not done, and a done node whose
        in-memory (ephemeral) output a node still to run needs, children before parents."""
        def ephemeral(name: str) -> bool:
            ds = catalog.get(name, fallback_to_runtime_pattern=True)
            return ds is None or getattr(ds, "_EPHEMERAL", False)

        to_run = []
        needed: set[str] = set()  # inputs of nodes that will run
        for node in reversed(pipeline.nodes):  # children before parents
            if node.name not in self.done or any(o in needed and ephemeral(o) for o in node.outputs):
                to_run.append(node.name)
                needed.update(node.inputs)
        return to_run

    def pin_done_versions(self, catalog) -> None:
        """Pin every versioned output of the done nodes in ``catalog`` to the version the killed run wrote."""
        for versions in self.done.values():
            for name, version in versions.items():
                if version is None:
                    continue
                ds = catalog.get(name, fallback_to_runtime_pattern=True)
                if isinstance(ds, AbstractVersionedDataset):
                    catalog[name] = catalog.get(name, version=Version(version, ds._version.save))

    def remaining(self, pipeline, catalog):
        """The sub-pipeline still to run (``None``: nothing), with the done nodes' versioned outputs pinned."""
        to_run = self.remaining_nodes(pipeline, catalog)
        self.pin_done_versions(catalog)
        return pipeline.filter(node_names=to_run) if to_run else None


def resume_dirs_of(inputs: dict) -> list[str]:
    """The resume directories a node reads from its parameters (``params:*resume_dir``)."""
    return [v for k, v in inputs.items() if k.startswith("params:") and k.endswith("resume_dir") and v]


def resume_dir_of(data) -> str | None:
    """The resume directory recorded in a saved output's lineage (a checkpoint's ``resume_dir``)."""
    lineage = getattr(data, "lineage", None)
    return lineage.get("resume_dir") or None if isinstance(lineage, dict) else None


class ResumeHook:
    """Owns the run journal and writes it (see module docstring); registered before the tracking hook.

    It is also the tracking hook's run store (:meth:`mlflow_runs`, :meth:`record_mlflow_runs`,
    :meth:`nodes_to_run`) and :class:`ResumableRunner` asks it for the journal.
    """

    def __init__(self):
        self._project_path = Path.cwd()
        self._env = "base"
        self._pending: dict[str, set[str]] = {}
        self._resume_dirs: dict[str, list[str]] = {}
        self._catalog = None
        self.journal: RunJournal | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        """Remember the project and environment: the journal lives under the project, keyed by the env."""
        self._project_path, self._env = Path(context.project_path), context.env or "base"

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        """Open this configuration's journal: a killed run's (to resume) or a fresh one."""
        params = catalog.load("parameters") if "parameters" in catalog else {}
        key = run_key(self._env, [n.name for n in pipeline.nodes], params)
        allow = os.environ.get("NEMOTRON_CASCADE_RESUME", "1") != "0"
        session = str(run_params.get("run_id") or run_params.get("session_id"))
        self.journal = journal = RunJournal.open(self._project_path / JOURNAL_DIR, key, session, allow)
        if journal.resumed:
            log.info("resuming the killed run %s: %d of %d nodes already done (journal %s; "
                     "NEMOTRON_CASCADE_RESUME=0 starts afresh)", journal.data["session_id"],
                     len(set(journal.done) & {n.name for n in pipeline.nodes}), len(pipeline.nodes), journal.path)
        self._pending, self._resume_dirs, self._catalog = {}, {}, catalog

    # -- the tracking hook's run store ----------------------------------------------------------
    def mlflow_runs(self) -> dict:
        """The MLflow runs of the killed run being resumed (``{}`` when this run starts afresh)."""
        journal = self.journal
        return dict(journal.data.get("mlflow") or {}) if journal is not None and journal.resumed else {}

    def record_mlflow_runs(self, parent: str, children: dict[str, str]) -> None:
        """Record this run's MLflow parent and stage runs in the journal."""
        if self.journal is not None:
            self.journal.set_mlflow(parent, children)

    def nodes_to_run(self, pipeline) -> set[str]:
        """The nodes of ``pipeline`` this run executes: all of them unless it resumes a killed run."""
        journal = self.journal
        if journal is None or not journal.resumed or self._catalog is None:
            return {n.name for n in pipeline.nodes}
        return set(journal.remaining_nodes(pipeline, self._catalog))

    # -- recording -------------------------------------------------------------------------------
    @hook_impl
    def after_node_run(self, node, catalog, inputs: dict) -> None:
        """Note the node's resume directories; it is done now if it has no outputs, else once all are saved."""
        # a trainer keeps its last state in its resume dir until the node's checkpoint is saved
        self._resume_dirs[node.name] = resume_dirs_of(inputs)
        self._catalog = catalog
        if not node.outputs:
            self._done(node, {})
        else:
            self._pending[node.name] = set(node.outputs)

    def _done(self, node, versions: dict) -> None:
        if self.journal is not None:
            self.journal.node_done(node.name, versions)
        for directory in dict.fromkeys(self._resume_dirs.pop(node.name, [])):
            resume_state.clear(directory)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:
        """Mark the node done, with its outputs' versions, once its last output is saved."""
        if node is None or node.name not in self._pending:
            return
        directory = resume_dir_of(data)
        if directory:
            self._resume_dirs.setdefault(node.name, []).append(directory)
        left = self._pending[node.name]
        left.discard(dataset_name)
        if not left:
            del self._pending[node.name]
            versions = {}
            for name in node.outputs:
                ds = self._catalog.get(name, fallback_to_runtime_pattern=True)
                versions[name] = ds.resolve_save_version() if isinstance(ds, AbstractVersionedDataset) else None
            self._done(node, versions)

    @hook_impl
    def after_pipeline_run(self) -> None:
        """The run succeeded: its journal goes."""
        if self.journal is not None:
            self.journal.finish()
        self.journal = None

    @hook_impl
    def on_pipeline_error(self) -> None:
        """The run failed: keep its journal for the next identical command, drop the lock."""
        if self.journal is not None:
            log.info("run journal kept at %s: rerun the same command to resume", self.journal.path)
            self.journal.release()
        self.journal = None


def resume_hook_of(hook_manager) -> ResumeHook | None:
    """The :class:`ResumeHook` registered with a session's hook manager, if any."""
    plugins = hook_manager.get_plugins() if hasattr(hook_manager, "get_plugins") else ()
    return next((p for p in plugins if isinstance(p, ResumeHook)), None)


class ResumableRunner(SequentialRunner):
    """``SequentialRunner`` that skips the nodes a killed run with the same journal key finished.

    The journal comes from the :class:`ResumeHook` registered with the session's hook manager;
    without one (a bare runner) it runs every node, as ``SequentialRunner`` does.
    """

    def run(self, pipeline, catalog, hook_manager=None, run_id=None, only_missing_outputs=False):
        """Run what the killed run left, with its finished checkpoints pinned; else the whole pipeline."""
        hook = resume_hook_of(hook_manager)
        journal = hook.journal if hook is not None else None
        if journal is not None and journal.resumed:
            remaining = journal.remaining(pipeline, catalog)
            skipped = len(pipeline.nodes) - (len(remaining.nodes) if remaining else 0)
            log.info("resume: skipping %d finished nodes, running %d", skipped, len(pipeline.nodes) - skipped)
            if remaining is None:
                return {}
            pipeline = remaining
        return super().run(pipeline, catalog, hook_manager, run_id, only_missing_outputs)
