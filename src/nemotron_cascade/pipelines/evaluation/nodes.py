"""Nodes of the evaluation pipeline."""

from __future__ import annotations

import logging

from nemotron_cascade import tracking
from nemotron_cascade.datasets.checkpoint import Checkpoint
from nemotron_cascade.evaluation import benchmarks, report
from nemotron_cascade.generation.engines import make_generator

log = logging.getLogger(__name__)


def evaluate_policy(policy: Checkpoint, benchmark: list[dict],
                    evaluation: benchmarks.EvalConfig) -> tuple[dict, list[dict]]:
    """Scores of one checkpoint on every domain's held-out benchmark, and the per-item records
    (``params:evaluation``, typed: Kedro builds the config before any node runs). The checkpoint
    generates on ``evaluation.engine`` (vLLM builds its own copy on the GPU; HF generate runs the
    checkpoint on ``evaluation.device``), in the dtype it was saved in."""
    generator = make_generator(evaluation.engine, policy.model, policy.tokenizer, evaluation.batch_size,
                               evaluation.vllm, device=evaluation.device)
    metrics, records = benchmarks.evaluate(generator, benchmark, evaluation)
    metrics = {"checkpoint_version": policy.lineage.get("version"), **metrics}
    tracking.log_metrics(metrics, prefix="eval/")
    return metrics, records


def report_matrix(labels: list[str], *metrics: dict):
    """The stage-by-benchmark matrix as a table, Markdown and a plot (the tracking hook puts all
    three on the cascade's parent run once they are saved)."""
    table = report.matrix(labels, list(metrics))
    markdown = report.to_markdown(table)
    log.info("cascade matrix:\n%s", markdown)
    return table, markdown, report.plot(table)
