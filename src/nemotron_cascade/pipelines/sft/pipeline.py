"""Wiring of SFT: the base model, then one template pipeline reused for stage 1 and stage 2."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.sft import nodes
from nemotron_cascade.stages import for_stage

STAGES = ("stage1", "stage2")


def stage_template(stage: str) -> Pipeline:
    """One SFT stage: ``policy_in`` + ``blend`` → ``policy`` (+ its training history); ``params:config``."""
    return pipeline([
        node(for_stage(nodes.train_sft_stage, stage),
             inputs={"policy": "policy_in", "blend": "blend", "config": "params:config"},
             outputs=["policy", "train_history"], name="train_sft"),
    ])


def create_pipeline(**kwargs) -> Pipeline:
    """base model → sft.stage1 → sft.stage2; parameters ``params:base_model`` and ``params:sft.<stage>``."""
    base = pipeline([
        node(nodes.build_base_model, inputs={"samples": "teacher_samples", "config": "params:base_model"},
             outputs="base.policy", name="build_base_model", tags=["stage.base"]),
    ])
    previous, stages = "base.policy", []
    for s in STAGES:
        stage = f"sft.{s}"
        stages.append(pipeline(stage_template(stage), namespace=stage, parameters={"params:config": f"params:{stage}"},
                               inputs={"policy_in": previous, "blend": f"sft_blend_{s}"}))
        previous = f"{stage}.policy"
    return base + sum(stages, Pipeline([]))
