"""The evaluation nodes with the standard harness beside the project's verifiers
(:mod:`nemotron_cascade.evaluation.harness`, ``params:evaluation_harness``).

``evaluate_policy`` is the ``evaluate`` node: the project's benchmarks (:func:`nodes.evaluate_policy`)
and, when the harness is enabled (the gpu profile), lm-eval's scores of the same checkpoint as
``harness/<column>`` metrics beside them. ``report_matrix`` adds those columns to the matrix. With
the harness off (base, test) both return exactly what the plain nodes return.
"""

from __future__ import annotations

import logging

from nemotron_cascade import tracking
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.evaluation import benchmarks, harness, report
from nemotron_cascade.pipelines.evaluation import nodes

log = logging.getLogger(__name__)


def evaluate_policy(policy: Checkpoint, benchmark: list[dict], evaluation: benchmarks.EvalConfig,
                    evaluation_harness: harness.HarnessConfig) -> tuple[dict, list[dict]]:
    """The project's scores and records of one checkpoint, plus lm-eval's ``harness/<column>``
    scores when the harness is on (``evaluation_harness.enabled``: true, or auto in the gpu environment)."""
    metrics, records = nodes.evaluate_policy(policy, benchmark, evaluation)
    if not evaluation_harness.active():
        return metrics, records
    path = policy.lineage.get("path")
    if not path:
        raise ValueError("params evaluation_harness.enabled: the harness loads the checkpoint from its directory, "
                         "but this policy's lineage has no 'path' (not loaded from a CheckpointDataset)")
    _release(policy)
    scores = harness.evaluate_checkpoint(path, evaluation.thinking, evaluation_harness, evaluation.max_new_tokens)
    tracking.log_metrics(scores, prefix="eval/")
    return {**metrics, **scores}, records


def _release(policy: Checkpoint) -> None:
    """Move the in-memory policy off the accelerator: the harness's vLLM engine loads the
    checkpoint again and wants the GPU memory."""
    import torch

    if torch.cuda.is_available() and next(policy.model.parameters()).is_cuda:
        policy.model.to("cpu")
        torch.cuda.empty_cache()


def report_matrix(labels: list[str], *metrics: dict):
    """The matrix of :func:`nodes.report_matrix`, with the ``harness/<column>`` columns the metrics
    carry appended (none with the harness off: the plain node's outputs, unchanged)."""
    table, markdown, figure = nodes.report_matrix(labels, *metrics)
    extended = harness.add_columns(table, list(metrics))
    if extended is table:
        return table, markdown, figure
    markdown = report.to_markdown(extended)
    log.info("cascade matrix with the standard harness:\n%s", markdown)
    return extended, markdown, figure
