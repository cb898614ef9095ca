"""Wiring of the data-curation pipeline."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.data.world import DOMAINS
from nemotron_cascade.pipelines.data_curation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """world (with planted leaks and duplicates) → raw tasks → curated tasks (quarantine,
    decontamination, near-duplicate removal) → SWE tasks hydrated from git (real ones) and
    localised → prompt splits → teacher responses → filtered samples → SFT blends of stage 1 and 2,
    and the data card; preference pairs for the reward model."""
    tag = ["stage.data_curation"]
    return pipeline([
        node(nodes.generate_world,
             inputs={"seed": "params:world.seed", "sizes": "params:world.sizes", "plant": "params:world.plant",
                     **{d: f"source.{d}" for d in DOMAINS}},
             outputs={d: f"raw.{d}" for d in DOMAINS}, name="generate_world", tags=tag),
        node(nodes.curate_tasks,
             inputs={"item_fields": "params:curation.item_fields", "decontamination": "params:curation.decontamination",
                     "dedup": "params:curation.dedup", "external_benchmarks": "external_benchmarks",
                     **{d: f"raw.{d}" for d in DOMAINS}},
             outputs=["curated_tasks", "curation_removed", "quarantine", "curation_stats"],
             name="curate_tasks", tags=tag),
        node(nodes.localise_swe_tasks, inputs={"rows": "curated_tasks", "top_k": "params:localisation.top_k",
                                              "repositories": "params:swe_repositories"},
             outputs="localised.swe", name="localise_swe_tasks", tags=tag),
        node(nodes.split_tasks, inputs={"tasks": "curated_tasks", "localised_swe": "localised.swe"},
             outputs={"sft_prompts": "sft_prompts", "rl_prompts": "rl_prompts", "benchmark": "benchmark"},
             name="split_tasks", tags=tag),
        node(nodes.generate_teacher_responses,
             inputs={"prompts": "sft_prompts", "backend": "params:teacher.backend",
                     "thinking_share": "params:teacher.thinking_share",
                     "both_modes_share": "params:teacher.both_modes_share", "seed": "params:teacher.seed",
                     "backends": "params:teacher.backends", "k": "params:teacher.k",
                     "batch_size": "params:teacher.batch_size", "cache_dir": "params:teacher.cache_dir"},
             outputs="teacher_samples", name="generate_teacher_responses", tags=tag),
        node(nodes.plant_teacher_flaws,
             inputs={"samples": "teacher_samples", "per_kind": "params:filters.plant_per_kind",
                     "seed": "params:filters.config.seed", "max_chars": "params:filters.config.max_chars"},
             outputs="teacher_samples_with_flaws", name="plant_teacher_flaws", tags=tag),
        node(nodes.filter_teacher_samples,
             inputs={"samples": "teacher_samples_with_flaws", "sft_prompts": "sft_prompts",
                     "config": "params:filters.config", "backends": "params:teacher.backends"},
             outputs=["filtered_samples", "filter_removed", "filter_stats"], name="filter_teacher_samples", tags=tag),
        node(nodes.build_data_card,
             inputs={"raw_stats": "curation_stats", "curated": "curated_tasks", "removed_tasks": "curation_removed",
                     "quarantined": "quarantine", "teacher_samples": "teacher_samples_with_flaws",
                     "filtered": "filtered_samples", "removed_samples": "filter_removed",
                     "filter_stats": "filter_stats",
                     "blend_stage1": "sft_blend_stage1", "blend_stage2": "sft_blend_stage2",
                     "tokenizer": "params:data_card.tokenizer"},
             outputs=["data_card", "data_card_plot", "data_card_table"], name="build_data_card", tags=tag),
        *[node(nodes.build_sft_blend,
               inputs={"samples": "filtered_samples", "weights": f"params:sft_blends.{s}.weights",
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
