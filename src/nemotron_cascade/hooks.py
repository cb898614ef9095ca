"""Stage tracking: one MLflow parent run per ``kedro run``, one child run per cascade stage.

Why not kedro-mlflow: it opens a single run per ``kedro run`` and logs typed parameters as one
repr string; Cascade RL needs one run per stage (to compare stages side by side in the MLflow UI)
under a parent that ties one cascade together. This hook does exactly that in ~150 lines:

* ``before_pipeline_run`` opens the parent run (tags: pipeline, env, session, pinned versions);
* every node belongs to a *stage*: its namespace without the ``evaluation.`` prefix (so a stage's
  training and its evaluation share a run), or its ``stage.<name>`` tag, or ``data_curation``;
* around each node the stage's child run is made active, so ``tracking.log_metrics`` inside the
  library loops lands there; the node's ``params:`` inputs are logged as flat parameters, secrets
  redacted (``redact``: a key such as ``api_key``, ``hf_token``, ``password``, or anything under
  ``credentials``, and the password of a ``scheme://user:password@host`` URL);
* every checkpoint read or written is tagged on the stage run (``read.<dataset>`` /
  ``wrote.<dataset>`` = version), and the checkpoint's own ``lineage.json`` names the run.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path

from kedro.framework.hooks import hook_impl

from nemotron_cascade import journal as run_journal
from nemotron_cascade import numerics

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 500
REDACTED = "[redacted]"

# Words of a parameter key (snake/kebab/camel case split, lower-cased) that mark its value secret;
# "key" only after api/access/private/secret/signing (``dedup.key`` is not a secret). Plural
# "tokens" (``max_tokens``) and "tokenizer" are not.
_SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential",
                 "credentials", "apikey", "auth", "authorization", "bearer", "cookie"}
_KEY_QUALIFIERS = {"api", "access", "private", "secret", "signing", "client"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):[^/\s@]+@")


def _words(key: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()) if w]


def is_secret_key(key: str) -> bool:
    """Whether a (dotted) parameter key names a secret, in any of its parts."""
    for part in key.split("."):
        words = _words(part)
        if any(w in _SECRET_WORDS for w in words) or any(
                w == "key" and i and words[i - 1] in _KEY_QUALIFIERS for i, w in enumerate(words)):
            return True
    return False


def redact(key: str, value: str) -> str:
    """``value`` as it may be logged: ``[redacted]`` under a secret key, except the *name* of an
    environment variable under a key ending in ``_env`` (``api_key_env: OPENAI_API_KEY``, the
    design for secrets: the value stays in the environment); URL passwords masked everywhere."""
    if is_secret_key(key):
        words = _words(key.rsplit(".", 1)[-1])
        if not (words and words[-1] == "env" and (value == "None" or _ENV_NAME.fullmatch(value))):
            return REDACTED
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)


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


def stage_of(node) -> str:
    """The cascade stage a node belongs to."""
    ns = node.namespace or ""
    if ns.startswith("evaluation."):
        ns = ns[len("evaluation."):]
    if ns:
        return ns
    tagged = [t.split(".", 1)[1] for t in node.tags if t.startswith("stage.")]
    return tagged[0] if tagged else "data_curation"


def flatten(prefix: str, value, out: dict) -> dict:
    """Flatten nested parameters into ``a.b.c`` keys with short string values."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = redact(prefix, str(value))[:MAX_PARAM_CHARS]
    return out


class StageTrackingHook:
    """MLflow parent/child runs per ``kedro run`` and per stage (see module docstring)."""

    def __init__(self):
        self._enabled = False
        self._client = None
        self._parent = None
        self._children: dict[str, str] = {}
        self._experiment_id = None

    @hook_impl
    def after_context_created(self, context) -> None:
        try:
            conf = context.config_loader["mlflow"]
        except Exception:  # no mlflow.yml: tracking off
            conf = {}
        settings = conf.get("tracking", conf) if isinstance(conf, dict) else {}
        self._enabled = bool(settings.get("enabled", False)) and os.environ.get("NEMOTRON_CASCADE_NO_MLFLOW") != "1"
        if not self._enabled:
            return
        import mlflow

        uri = settings.get("tracking_uri", "sqlite:///mlflow.db")
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = "sqlite:///" + str(Path(context.project_path) / uri[len("sqlite:///"):])
        mlflow.set_tracking_uri(uri)
        name = settings.get("experiment_name", "nemotron-cascade")
        with store_init_lock(uri):  # two runs starting on a fresh mlflow.db would both create its tables
            self._client = mlflow.MlflowClient(uri)  # opens the store: creates the tables if new
            exp = self._client.get_experiment_by_name(name)
            self._experiment_id = exp.experiment_id if exp else self._client.create_experiment(name)
        self._env = context.env or "base"

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        if not self._enabled:
            return
        import mlflow

        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        tags = {"kedro.pipeline": ",".join(map(str, names)), "kedro.env": str(self._env),
                "kedro.session_id": str(run_params.get("session_id")),
                "kedro.load_versions": str(run_params.get("load_versions") or {}),
                **numerics.tags()}
        journal = run_journal.current()
        previous = journal.data.get("mlflow", {}) if journal is not None and journal.resumed else {}
        if previous.get("parent"):  # a resumed run continues the killed run's MLflow runs
            parent = mlflow.start_run(run_id=previous["parent"])
            self._client.set_tag(parent.info.run_id, "kedro.resumed_by_session", str(run_params.get("session_id")))
            self._parent, self._children = parent.info.run_id, dict(previous.get("children", {}))
        else:
            parent = mlflow.start_run(experiment_id=self._experiment_id, run_name=f"{tags['kedro.pipeline']}",
                                      tags=tags)
            self._parent, self._children = parent.info.run_id, {}
        self._record()

    def _record(self) -> None:
        journal = run_journal.current()
        if journal is not None:
            journal.set_mlflow(self._parent, self._children)

    def _child(self, stage: str) -> str:
        if stage not in self._children:
            run = self._client.create_run(self._experiment_id, run_name=stage,
                                          tags={"mlflow.parentRunId": self._parent, "stage": stage})
            self._children[stage] = run.info.run_id
            self._record()
        return self._children[stage]

    @hook_impl
    def before_node_run(self, node, inputs: dict) -> None:
        if not self._enabled or self._parent is None:
            return
        import mlflow

        run_id = self._child(stage_of(node))
        mlflow.start_run(run_id=run_id, nested=True)
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
        self._end_child()

    @hook_impl
    def on_node_error(self, node) -> None:
        self._end_child(status="FAILED")

    def _end_child(self, status: str = "FINISHED") -> None:
        if not self._enabled or self._parent is None:
            return
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id != self._parent:
            mlflow.end_run(status=status)

    def _tag_checkpoint(self, kind: str, dataset_name: str, data, node) -> None:
        from nemotron_cascade.datasets.checkpoint import Checkpoint

        if not self._enabled or self._parent is None or not isinstance(data, Checkpoint) or node is None:
            return
        run_id = self._child(stage_of(node))
        self._client.set_tag(run_id, f"{kind}.{dataset_name}", str(data.lineage.get("version")))
        if kind == "read" and data.lineage.get("mlflow_run_id"):
            self._client.set_tag(run_id, f"read.{dataset_name}.run_id", data.lineage["mlflow_run_id"])

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data, node) -> None:
        self._tag_checkpoint("read", dataset_name, data, node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data, node) -> None:
        self._tag_checkpoint("wrote", dataset_name, data, node)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close("FINISHED")

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close("FAILED")

    def _close(self, status: str) -> None:
        if not self._enabled or self._parent is None:
            return
        import mlflow

        for run_id in self._children.values():
            self._client.set_terminated(run_id, status=status)
        while mlflow.active_run() is not None:
            mlflow.end_run(status=status)
        self._parent = None


class MissingUpstreamError(RuntimeError):
    """A pipeline's input dataset does not exist yet; the message names who produces it."""


class UpstreamCheckHook:
    """Before a run, check that every free input of the pipeline exists, naming its producer.

    ``kedro run --pipelines=sft`` on a fresh clone would otherwise fail deep inside a node; this
    says which dataset is missing and which registered pipeline writes it.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        from kedro.framework.project import pipelines

        missing = [name for name in sorted(pipeline.inputs())
                   if not name.startswith("params:") and name != "parameters" and not catalog.exists(name)]
        if not missing:
            return
        lines = []
        for name in missing:
            producers = [p for p, pipe in pipelines.items()
                         if p not in ("__default__", "cascade") and name in pipe.all_outputs()]
            hint = f"produced by pipeline {', '.join(producers)}" if producers else "not produced by any pipeline"
            lines.append(f"  - {name} ({hint}; run `kedro run --pipelines={producers[0]}`)" if producers
                         else f"  - {name} ({hint})")
        raise MissingUpstreamError("missing upstream datasets for this run:\n" + "\n".join(lines))


class DataLineageHook:
    """Records the data behind every checkpoint: in its ``lineage.json`` and as MLflow inputs.

    Before a node runs, each of its inputs other than parameters and checkpoints is described by its
    row count and SHA-256, and traced through in-memory intermediates (``code_rl.prompts``) back to
    the files they were computed from (``data/03_primary/rl_prompts.jsonl``), each with its digest.
    The files go to the stage's MLflow run with ``mlflow.log_input`` (context ``training`` when the
    node writes a checkpoint, ``evaluation`` otherwise); a checkpoint the node writes gets the whole
    description under ``inputs`` in its lineage, which ``python -m nemotron_cascade.lineage`` follows.
    """

    def __init__(self):
        self._producers: dict = {}
        self._catalog = None
        self._inputs: dict[str, dict] = {}
        self._root = Path.cwd()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._root = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, pipeline, catalog) -> None:
        self._producers = {out: n for n in pipeline.nodes for out in n.outputs}
        self._catalog, self._inputs = catalog, {}

    def _dataset(self, name: str):
        return self._catalog.get(name, fallback_to_runtime_pattern=True) if self._catalog is not None else None

    def _file_of(self, name: str) -> Path | None:
        from nemotron_cascade.datasets.checkpoint import CheckpointDataset

        ds = self._dataset(name)
        if ds is None or isinstance(ds, CheckpointDataset) or not hasattr(ds, "_filepath"):
            return None
        try:
            path = Path(str(ds._get_load_path()))
        except Exception:  # a versioned dataset without any version yet
            return None
        return path if path.is_file() else None

    def _files_behind(self, name: str, seen: set) -> list[Path]:
        from nemotron_cascade.datasets.checkpoint import CheckpointDataset

        if name in seen or name.startswith("params:") or name == "parameters" \
                or isinstance(self._dataset(name), CheckpointDataset):  # checkpoints: the parent chain
            return []
        seen.add(name)
        path = self._file_of(name)
        if path is not None:
            return [path]
        producer = self._producers.get(name)
        if producer is None:
            return []
        return [f for inp in producer.inputs for f in self._files_behind(inp, seen)]

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self._root.resolve()))
        except ValueError:
            return str(path)

    @hook_impl(trylast=True)  # after the tracking hook has made the stage's run active
    def before_node_run(self, node, inputs: dict) -> None:
        from nemotron_cascade import tracking
        from nemotron_cascade.datasets.checkpoint import Checkpoint, CheckpointDataset
        from nemotron_cascade.lineage import content_digest, file_digest

        described = {}
        for name, data in inputs.items():
            if name.startswith("params:") or name == "parameters" or isinstance(data, Checkpoint):
                continue
            files = list(dict.fromkeys(self._files_behind(name, set())))  # the input's own file, or those behind it
            direct = self._file_of(name) is not None
            described[name] = {
                "rows": len(data) if hasattr(data, "__len__") else None,
                "sha256": file_digest(files[0]) if direct else content_digest(data),
                "files": [{"path": self._relative(f), "sha256": file_digest(f)} for f in files],
            }
        self._inputs[node.name] = described
        writes_checkpoint = any(isinstance(self._dataset(o), CheckpointDataset) for o in node.outputs)
        for name, info in described.items():
            for f in info["files"]:
                tracking.log_input_file(f["path"], f["sha256"], name=Path(f["path"]).name,
                                        context="training" if writes_checkpoint else "evaluation")

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data, node) -> None:
        from nemotron_cascade.datasets.checkpoint import Checkpoint

        if isinstance(data, Checkpoint) and node is not None and node.name in self._inputs:
            data.lineage["inputs"] = self._inputs[node.name]
