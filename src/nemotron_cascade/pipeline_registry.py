"""Explicit pipeline registry (``find_pipelines()`` breaks on namespaced template pipelines).

The cascade's order lives here and nowhere else: each RL stage reads the checkpoint of the stage
before it. Stage names are stable; RL stages whose issues have not landed yet are registered empty
and skipped in the chain.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from nemotron_cascade.pipelines import data_curation, evaluation, reward_model, rl_stage, sft

RL_STAGES = ("rlhf", "if_rl", "math_rl", "code_rl", "swe_rl")
BUILT_RL_STAGES = ("rlhf", "if_rl", "math_rl", "code_rl", "swe_rl")
# stages given the reward model (RLHF's reward; IF-RL's combined reward for thinking models)
REWARD_MODEL_STAGES = ("rlhf", "if_rl")
REWARD_MODEL = "reward_model.model"
# stages whose prompts are localised with the policy's own guess before training
LOCALISED_STAGES = ("swe_rl",)
# the checkpoint the reward model starts from
REWARD_MODEL_INIT = "sft.stage2"
# control runs: same template and input as the stage, parameters under their own name
CONTROLS = {"math_rl_control": "math_rl"}


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage by name; ``cascade`` (= ``__default__``) chains them with evaluation after each.

    A stage's pipeline trains it, evaluates its checkpoint on every domain and redraws the matrix
    over every checkpoint up to it, so ``kedro run --pipelines=math_rl`` shows forgetting too.
    """
    checkpoints = list(evaluation.pipeline.CHECKPOINTS)  # base, sft.stage1, sft.stage2
    evals = {c: evaluation.evaluation_of(c) for c in checkpoints}
    sft_stages = sft.create_pipeline()
    pipes = {
        "data_curation": data_curation.create_pipeline(),
        "sft": sft_stages + sum(evals.values(), Pipeline([])) + evaluation.report_of(checkpoints),
        "reward_model": reward_model.create_pipeline(REWARD_MODEL_INIT),
    }
    trained = {}
    previous, inputs_of = "sft.stage2", {}
    for stage in RL_STAGES:
        if stage not in BUILT_RL_STAGES:
            pipes[stage] = Pipeline([])
            continue
        trained[stage] = rl_stage.create_pipeline(
            stage, previous, reward_model=REWARD_MODEL if stage in REWARD_MODEL_STAGES else None,
            localise=stage in LOCALISED_STAGES)
        evals[stage] = evaluation.evaluation_of(stage)
        inputs_of[stage] = previous
        checkpoints.append(stage)
        pipes[stage] = trained[stage] + evals[stage] + evaluation.report_of(checkpoints)
        previous = stage
    for control, stage in CONTROLS.items():
        pipes[control] = rl_stage.create_pipeline(control, inputs_of[stage]) + evaluation.evaluation_of(control)
    all_evals = sum(evals.values(), Pipeline([]))
    pipes["evaluation"] = all_evals + evaluation.report_of(checkpoints)
    pipes["cascade"] = (pipes["data_curation"] + sft_stages + pipes["reward_model"] + sum(trained.values(), Pipeline([]))
                        + pipes["evaluation"])
    pipes["__default__"] = pipes["cascade"]
    return pipes
