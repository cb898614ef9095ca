"""Thin helpers for logging to the MLflow run of the current stage.

The :class:`~nemotron_cascade.tracking.runs.StageTrackingHook` activates the stage's run around every node,
so library loops only receive a callback (:func:`log_metrics`) and never touch MLflow themselves.
Outside a Kedro run (no active run) every helper is a no-op.
"""

from __future__ import annotations

import logging
import math
import sys

log = logging.getLogger(__name__)


def _active_run():
    mlflow = sys.modules.get("mlflow")  # imported by the hook; never import it here for nothing
    return mlflow.active_run() if mlflow is not None else None


def log_metrics(metrics: dict, step: int | None = None, prefix: str = "") -> None:
    """Log finite numeric metrics to the active stage run (no-op without one)."""
    run = _active_run()
    if run is None:
        return
    import mlflow

    clean = {f"{prefix}{k}": float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    mlflow.log_metrics(clean, step=step)


def current_run_id() -> str | None:
    """The id of the active stage run, if any (recorded in checkpoint lineage)."""
    run = _active_run()
    return run.info.run_id if run is not None else None


def log_text(text: str, artifact_file: str) -> None:
    """Store a text artifact (a table, a report) in the active run."""
    if _active_run() is not None:
        import mlflow

        mlflow.log_text(text, artifact_file)


def log_figure(fig, artifact_file: str) -> None:
    """Store a matplotlib figure in the active run."""
    if _active_run() is not None:
        import mlflow

        mlflow.log_figure(fig, artifact_file)


def log_input_file(path: str, sha256: str, name: str, context: str) -> None:
    """Log a data file the active run read (``mlflow.log_input``) with its digest; no-op without a run."""
    if _active_run() is None:
        return
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    source = resolve_dataset_source(str(path))  # a local path: MLflow's local artifact source
    mlflow.log_input(MetaDataset(source, name=name, digest=sha256[:16]), context=context)
