"""One GRPO stage of the cascade, instantiated per stage by namespace, inputs and parameters."""

from nemotron_cascade.pipelines.rl_stage.pipeline import create_pipeline, stage_template

__all__ = ["create_pipeline", "stage_template"]
