"""MLflow tracking of a cascade: helpers for the library, hooks for Kedro (one module per job).

* :mod:`.active_run`: ``log_metrics``, ``current_run_id``, ``log_text``, ``log_figure``,
  ``log_input_file``, what nodes and training loops call (no-ops outside a tracked run);
* :mod:`.runs`: :class:`~.runs.StageTrackingHook`, one MLflow parent run per ``kedro run`` and one
  child run per stage, with :mod:`.stages` naming a node's stage and its place in the cascade;
* :mod:`.data_lineage`: :class:`~.data_lineage.DataLineageHook`, the data behind every checkpoint;
* :mod:`.redaction`: what of a parameter may be logged (secrets masked);
* :mod:`.upstream`: :class:`~.upstream.UpstreamCheckHook`, a missing input named with its producer.

Only the helpers are imported here, so ``from nemotron_cascade import tracking`` stays cheap.
"""

from nemotron_cascade.tracking.active_run import current_run_id, log_figure, log_input_file, log_metrics, log_text

__all__ = ["current_run_id", "log_figure", "log_input_file", "log_metrics", "log_text"]
