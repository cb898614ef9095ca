"""The data behind every checkpoint: in its ``lineage.json`` and as MLflow inputs of the stage run."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl

from nemotron_cascade.tracking.active_run import log_input_file


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
        """Remember the project root: recorded file paths are relative to it."""
        self._root = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, pipeline, catalog) -> None:
        """Index which node produces each dataset of the run."""
        self._producers = {out: n for n in pipeline.nodes for out in n.outputs}
        self._catalog, self._inputs = catalog, {}

    def _dataset(self, name: str):
        return self._catalog.get(name, fallback_to_runtime_pattern=True) if self._catalog is not None else None

    def _file_of(self, name: str) -> Path | None:
        """The file a dataset loads from, if it is a file dataset with data (not a checkpoint)."""
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
        """The files a dataset is, or (in memory) was computed from, through its producers' inputs."""
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

    def _describe(self, name: str, data) -> dict:
        """Rows, digest and the files behind one input of a node."""
        from nemotron_cascade.lineage import content_digest, file_digest

        files = list(dict.fromkeys(self._files_behind(name, set())))  # the input's own file, or those behind it
        direct = self._file_of(name) is not None
        return {
            "rows": len(data) if hasattr(data, "__len__") else None,
            "sha256": file_digest(files[0]) if direct else content_digest(data),
            "files": [{"path": self._relative(f), "sha256": file_digest(f)} for f in files],
        }

    @hook_impl(trylast=True)  # after the tracking hook has made the stage's run active
    def before_node_run(self, node, inputs: dict) -> None:
        """Describe the node's data inputs and log their files as inputs of the stage run."""
        from nemotron_cascade.datasets.checkpoint import Checkpoint, CheckpointDataset

        described = {name: self._describe(name, data) for name, data in inputs.items()
                     if not (name.startswith("params:") or name == "parameters" or isinstance(data, Checkpoint))}
        self._inputs[node.name] = described
        writes_checkpoint = any(isinstance(self._dataset(o), CheckpointDataset) for o in node.outputs)
        for info in described.values():
            for f in info["files"]:
                log_input_file(f["path"], f["sha256"], name=Path(f["path"]).name,
                               context="training" if writes_checkpoint else "evaluation")

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data, node) -> None:
        """Write the node's input description into the lineage of a checkpoint it saves."""
        from nemotron_cascade.datasets.checkpoint import Checkpoint

        if isinstance(data, Checkpoint) and node is not None and node.name in self._inputs:
            data.lineage["inputs"] = self._inputs[node.name]
