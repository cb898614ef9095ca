"""Evaluation of every checkpoint on every domain, and the stage-by-benchmark matrix."""
from nemotron_cascade.pipelines.evaluation.pipeline import create_pipeline, evaluation_of, report_of

__all__ = ["create_pipeline", "evaluation_of", "report_of"]
