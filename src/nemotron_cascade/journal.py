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

What a stopped run leaves behind, whichever way it stops:

* The journal's lock (``<key>.lock``) is an ``flock`` held for the run's life: the kernel drops it
  when the process dies, even by ``kill -9``, so a lock is never stale and a pid reused by another
  process never passes for a live run (the pid in the file only names the holder in the refusal).
  The file goes on every exit the process survives: success, a failed node, a hook refusing the
  run before any node (a missing upstream dataset or pinned version, an MLflow store that fails),
  an interruption, and at interpreter exit.
* Ctrl-C (SIGINT) or SIGTERM becomes :class:`RunInterrupted`, an ``Exception``, so that Kedro's
  session calls ``on_pipeline_error`` (a bare ``KeyboardInterrupt`` skips it): the tracking hook marks
  the MLflow runs KILLED, this hook keeps the journal, and the message says to rerun the same command.
* A failure or interruption prints one recovery hint, this project's (rerun the same command):
  Kedro's ``--from-nodes`` suggestion is only given by a runner without a journal.
* A journal in which no node finished is removed: there is nothing to resume.

``NEMOTRON_CASCADE_RESUME=0`` turns resuming off (the journal is still written).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.runner import SequentialRunner

from nemotron_cascade.run_lock import RunInProgressError, RunLock  # noqa: F401 (RunInProgressError: re-exported)
from nemotron_cascade.training import resume as resume_state

log = logging.getLogger(__name__)

JOURNAL_DIR = Path("data/09_tracking/runs")


def run_key(env: str, node_names, parameters: dict, load_versions: dict | None = None) -> str:
    """Hash of what makes two runs the same run: environment, selected nodes, every parameter and
    the checkpoint versions pinned with ``--load-versions`` (a pinned run and an unpinned one differ)."""
    what = {"env": env, "nodes": sorted(node_names), "parameters": parameters}
    if load_versions:  # an unpinned run keeps the key it always had
        what["load_versions"] = dict(load_versions)
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunInterrupted(RuntimeError):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM (see module docstring)."""


class RunJournal:
    """The done nodes (with output versions) and MLflow runs of one ``kedro run``; see module docstring.

    While a run is in progress its journal is locked (``<key>.lock``, a
    :class:`~nemotron_cascade.run_lock.RunLock`): a second ``kedro run`` of the same configuration
    at the same time is refused instead of sharing it.
    """

    def __init__(self, path: Path, data: dict, resumed: bool, lock: RunLock | None = None):
        self.path, self.data, self.resumed, self._lock = Path(path), data, resumed, lock

    @classmethod
    def open(cls, directory: Path, key: str, session_id: str, allow_resume: bool = True) -> RunJournal:
        """Lock the journal of ``key`` and read it (a killed run's, to resume) or start a fresh one."""
        path = Path(directory) / f"{key}.json"
        lock = RunLock.take(path.with_suffix(".lock"))
        try:
            journal = cls._read_or_start(path, key, session_id, allow_resume)
        except BaseException:
            lock.release()
            raise
        journal._lock = lock
        return journal

    @classmethod
    def _read_or_start(cls, path: Path, key: str, session_id: str, allow_resume: bool) -> RunJournal:
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
        if self._lock is not None:
            self._lock.release()

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
        self._nodes: set[str] = set()
        self._resumable = True  # the run's runner reads the journal (Kedro's own give their own hint)
        self.journal: RunJournal | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        """Remember the project and environment: the journal lives under the project, keyed by the env."""
        self._project_path, self._env = Path(context.project_path), context.env or "base"

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        """Open this configuration's journal: a killed run's (to resume) or a fresh one."""
        self._let_go(self.journal)  # a previous run in this process that never reached its end
        self.journal = None
        params = catalog.load("parameters") if "parameters" in catalog else {}
        key = run_key(self._env, [n.name for n in pipeline.nodes], params, run_params.get("load_versions"))
        allow = os.environ.get("NEMOTRON_CASCADE_RESUME", "1") != "0"
        session = str(run_params.get("run_id") or run_params.get("session_id"))
        self.journal = journal = RunJournal.open(self._project_path / JOURNAL_DIR, key, session, allow)
        self._nodes = {n.name for n in pipeline.nodes}
        self._resumable = ResumableRunner.__name__ in str(run_params.get("runner") or ResumableRunner.__name__)
        if journal.resumed:
            log.info("resuming the killed run %s: %d of %d nodes already done (journal %s; "
                     "NEMOTRON_CASCADE_RESUME=0 starts afresh)", journal.data["session_id"],
                     len(set(journal.done) & self._nodes), len(self._nodes), journal.path)
        self._pending, self._resume_dirs, self._catalog = {}, {}, catalog

    @hook_impl(wrapper=True, specname="before_pipeline_run")
    def _guard_before_pipeline_run(self, run_params: dict):
        """Around every hook's ``before_pipeline_run``: if one refuses the run (a missing upstream
        dataset or pinned version, an MLflow store that fails), Kedro never calls ``on_pipeline_error``;
        the lock goes here, and the journal too unless it is a killed run's, still to resume."""
        try:
            return (yield)
        except BaseException:
            self._let_go(self.journal)
            self.journal = None
            raise

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

    def after_pipeline_run(self) -> None:
        """The run succeeded: its journal goes."""
        if self.journal is not None:
            self.journal.finish()
        self.journal = None

    def on_pipeline_error(self, error: BaseException | None = None) -> None:
        """The run failed or was interrupted: keep its journal for the next identical command (unless
        no node finished), drop the lock, and say how to resume: once, here, for a failure of a run
        of :class:`ResumableRunner`; an interruption's own message (:class:`RunInterrupted`) says it,
        and Kedro's runners (``--runner SequentialRunner``) give their own hint."""
        journal, self.journal = self.journal, None
        if journal is None:
            return
        self._let_go(journal)
        if isinstance(error, RunInterrupted) or not self._resumable:
            return
        done = len(set(journal.done) & self._nodes)
        if done:
            log.warning("%d of %d nodes of this run are done; fix the cause, then rerun the same command to resume: "
                        "they are skipped (run journal %s; NEMOTRON_CASCADE_RESUME=0 starts afresh)",
                        done, len(self._nodes), journal.path)
        else:
            log.warning("no node of this run finished; fix the cause, then rerun the same command")

    @staticmethod
    def _let_go(journal: RunJournal | None) -> None:
        """Release ``journal``'s lock; keep the journal only if some node finished (else nothing to resume)."""
        if journal is None:
            return
        if journal.done:
            journal.release()
        else:
            journal.finish()

    # Kedro calls these two after the other hooks' (wrappers' teardowns come last), whatever they raise
    @hook_impl(wrapper=True, specname="after_pipeline_run")
    def _guard_after_pipeline_run(self):
        """Finish the journal once every hook has closed the run, even if one of them failed."""
        try:
            return (yield)
        finally:
            self.after_pipeline_run()

    @hook_impl(wrapper=True, specname="on_pipeline_error")
    def _guard_on_pipeline_error(self, error: BaseException):
        """Keep the journal and drop the lock once every hook has handled the error, even if one failed."""
        try:
            return (yield)
        finally:
            self.on_pipeline_error(error)


def resume_hook_of(hook_manager) -> ResumeHook | None:
    """The :class:`ResumeHook` registered with a session's hook manager, if any."""
    plugins = hook_manager.get_plugins() if hasattr(hook_manager, "get_plugins") else ()
    return next((p for p in plugins if isinstance(p, ResumeHook)), None)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While in the block, SIGTERM (pre-emption, ``kill``) raises ``KeyboardInterrupt("SIGTERM")`` as
    Ctrl-C does, so that a terminated run ends as an interrupted one (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_message(exc: KeyboardInterrupt, journal: RunJournal | None) -> str:
    """What an interrupted run tells its user: what stopped it and how to resume."""
    how = "SIGTERM" if exc.args == ("SIGTERM",) else "SIGINT (Ctrl-C)"
    if journal is None:
        return f"run interrupted by {how}"
    done = len(journal.done)
    return (f"run interrupted by {how} with {done} node{'' if done == 1 else 's'} done; "
            "rerun the same command to resume: "
            "the done nodes are skipped and a training stage continues from its last mid-stage checkpoint "
            "(NEMOTRON_CASCADE_RESUME=0 starts afresh)")


class ResumableRunner(SequentialRunner):
    """``SequentialRunner`` that skips the nodes a killed run with the same journal key finished.

    The journal comes from the :class:`ResumeHook` registered with the session's hook manager;
    without one (a bare runner) it runs every node, as ``SequentialRunner`` does, and gives Kedro's
    own recovery hint. An interrupted run (Ctrl-C, SIGTERM) raises :class:`RunInterrupted`.
    """

    _journal: RunJournal | None = None

    def run(self, pipeline, catalog, hook_manager=None, run_id=None, only_missing_outputs=False):
        """Run what the killed run left, with its finished checkpoints pinned; else the whole pipeline."""
        hook = resume_hook_of(hook_manager)
        self._journal = journal = hook.journal if hook is not None else None
        if journal is not None and journal.resumed:
            remaining = journal.remaining(pipeline, catalog)
            skipped = len(pipeline.nodes) - (len(remaining.nodes) if remaining else 0)
            log.info("resume: skipping %d finished nodes, running %d", skipped, len(pipeline.nodes) - skipped)
            if remaining is None:
                return {}
            pipeline = remaining
        try:
            with sigterm_as_interrupt():
                return super().run(pipeline, catalog, hook_manager, run_id, only_missing_outputs)
        except KeyboardInterrupt as exc:  # an Exception, so that Kedro calls on_pipeline_error
            raise RunInterrupted(interrupted_message(exc, journal)) from exc

    def _suggest_resume_scenario(self, pipeline, done_nodes, catalog) -> None:
        """Kedro's hint (``--from-nodes …``) only without a journal: with one, the resume hook gives
        the right one (rerun the same command) once the hooks have handled the error."""
        if self._journal is None:
            super()._suggest_resume_scenario(pipeline, done_nodes, catalog)
