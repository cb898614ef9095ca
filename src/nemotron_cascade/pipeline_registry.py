"""Explicit pipeline registry (``find_pipelines()`` breaks on namespaced template pipelines).

Stage names are stable; the RL stages are registered empty until their issues fill them.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from nemotron_cascade.pipelines import data_curation, evaluation, sft

RL_STAGES = ("rlhf", "if_rl", "math_rl", "code_rl", "swe_rl")


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage by name; ``cascade`` (= ``__default__``) chains them with evaluation after each."""
    checkpoints = list(evaluation.pipeline.CHECKPOINTS)
    evals = sum((evaluation.evaluation_of(c) for c in checkpoints), Pipeline([]))
    pipes = {
        "data_curation": data_curation.create_pipeline(),
        "sft": sft.create_pipeline() + evals + evaluation.report_of(checkpoints),
        "evaluation": evaluation.create_pipeline(checkpoints),
        **{stage: Pipeline([]) for stage in RL_STAGES},
    }
    pipes["cascade"] = pipes["data_curation"] + pipes["sft"]
    pipes["__default__"] = pipes["cascade"]
    return pipes
