"""Wiring of the data-curation pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.data.world import DOMAINS
from nemotron_cascade.pipelines.data_curation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """world → raw tasks (SWE tasks localised) → prompt splits → teacher responses → SFT blends of stage 1 and 2; preference
    pairs for the reward model."""
    tag = ["stage.data_curation"]
    return pipeline([
        node(nodes.generate_world, inputs={"seed": "params:world.seed", "sizes": "params:world.sizes"},
             outputs={d: f"raw.{d}" for d in DOMAINS}, name="generate_world", tags=tag),
        node(nodes.localise_swe_tasks, inputs={"rows": "raw.swe", "top_k": "params:localisation.top_k"},
             outputs="localised.swe", name="localise_swe_tasks", tags=tag),
        node(nodes.split_tasks, inputs={d: "localised.swe" if d == "swe" else f"raw.{d}" for d in DOMAINS},
             outputs={"sft_prompts": "sft_prompts", "rl_prompts": "rl_prompts", "benchmark": "benchmark"},
             name="split_tasks", tags=tag),
        node(nodes.generate_teacher_responses,
             inputs={"prompts": "sft_prompts", "backend": "params:teacher.backend",
                     "thinking_share": "params:teacher.thinking_share",
                     "both_modes_share": "params:teacher.both_modes_share", "seed": "params:teacher.seed",
                     "options": "params:teacher.options"},
             outputs="teacher_samples", name="generate_teacher_responses", tags=tag),
        *[node(nodes.build_sft_blend,
               inputs={"samples": "teacher_samples", "weights": f"params:sft_blends.{s}.weights",
                       "max_response_chars": f"params:sft_blends.{s}.max_response_chars",
                       "multi_turn_share": f"params:sft_blends.{s}.multi_turn_share",
                       "seed": f"params:sft_blends.{s}.seed"},
               outputs=f"sft_blend_{s}", name=f"build_sft_blend_{s}", tags=tag)
          for s in ("stage1", "stage2")],
        node(nodes.build_preference_pairs,
             inputs={"prompts": "sft_prompts", "domains": "params:preferences.domains",
                     "max_pairs_per_domain": "params:preferences.max_pairs_per_domain",
                     "validation_share": "params:preferences.validation_share", "seed": "params:preferences.seed"},
             outputs="preference_pairs", name="build_preference_pairs", tags=tag),
    ])
