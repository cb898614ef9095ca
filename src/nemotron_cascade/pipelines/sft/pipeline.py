"""Wiring of SFT: the base model, then one template pipeline reused for stage 1 and stage 2."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.sft import nodes

STAGES = ("stage1", "stage2")


def stage_template() -> Pipeline:
    """One SFT stage: ``policy_in`` + ``blend`` → ``policy`` (+ its training history)."""
    return pipeline([
        node(nodes.train_sft_stage,
             inputs={"policy": "policy_in", "blend": "blend", "train": "params:train",
                     "stage": "params:name", "resume_dir": "params:resume_dir"},
             outputs=["policy", "train_history"], name="train_sft"),
    ])


def create_pipeline(**kwargs) -> Pipeline:
    """base model → sft.stage1 → sft.stage2."""
    base = pipeline([
        node(nodes.build_base_model,
             inputs={"samples": "teacher_samples", "source": "params:base_model.source",
                     "name_or_path": "params:base_model.name_or_path",
                     "vocab_size": "params:base_model.vocab_size", "tiny": "params:base_model.tiny",
                     "pretrain": "params:base_model.pretrain", "resume_dir": "params:base_model.resume_dir",
                     "dtype": "params:base_model.dtype", "attn_implementation": "params:base_model.attn_implementation"},
             outputs="base.policy", name="build_base_model", tags=["stage.base"]),
    ])
    previous, stages = "base.policy", []
    for s in STAGES:
        stages.append(pipeline(stage_template(), namespace=f"sft.{s}",
                               inputs={"policy_in": previous, "blend": f"sft_blend_{s}"}))
        previous = f"sft.{s}.policy"
    return base + sum(stages, Pipeline([]))
