"""Wiring of an RL stage: one template, namespaced per stage (``math_rl``, ``code_rl``, ...).

Stages differ only by their namespace, the checkpoint they read and their parameters (prompt
domains, reward name, GRPO knobs, and the wiring keys ``reward_model`` and ``localisation``) —
never by code that tests the stage's name.
"""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.rl_stage import nodes
from nemotron_cascade.stages import for_stage


def stage_template(stage: str, with_reward_model: bool = False, localise: bool = False) -> Pipeline:
    """``policy_in`` + ``rl_prompts`` (+ ``reward_model``) → ``policy``, its per-step GRPO curves
    (``train_history``) and their figure (``curves``); every node reads ``params:config``.

    ``localise``: the prompts' context files are re-ranked, the policy's own guess interleaved with
    BM25's ranking (SWE RL; ``localisation.top_k`` and ``localisation.max_new_tokens``).
    """
    rm = {"reward_model": "reward_model"} if with_reward_model else {}
    localised = [node(nodes.localise_prompts,
                      inputs={"policy": "policy_in", "prompts": "selected_prompts", "config": "params:config"},
                      outputs="prompts", name="localise_prompts")] if localise else []
    return pipeline([
        node(nodes.select_prompts, inputs={"rl_prompts": "rl_prompts", "config": "params:config"},
             outputs="selected_prompts" if localise else "prompts", name="select_prompts"),
        *localised,
        node(for_stage(nodes.train_rl_stage, stage),
             inputs={"policy": "policy_in", "prompts": "prompts", "config": "params:config", **rm},
             outputs=["policy", "train_history"], name="train_grpo"),
        node(for_stage(nodes.plot_stage_curves, stage),
             inputs={"train_history": "train_history", "config": "params:config"},
             outputs="curves", name="plot_curves"),
    ])


def create_pipeline(stage: str, input_checkpoint: str, reward_model: str | None = None, localise: bool = False,
                    **kwargs) -> Pipeline:
    """The RL stage ``stage`` reading ``<input_checkpoint>.policy`` (and the reward model dataset
    ``reward_model`` when given; localising its prompts with the policy when ``localise``);
    parameters ``params:<stage>`` (:class:`~nemotron_cascade.pipelines.rl_stage.config.RLStageConfig`)."""
    inputs = {"policy_in": f"{input_checkpoint}.policy", "rl_prompts": "rl_prompts"}
    if reward_model:
        inputs["reward_model"] = reward_model
    return pipeline(stage_template(stage, with_reward_model=bool(reward_model), localise=localise),
                    namespace=stage, inputs=inputs, parameters={"params:config": f"params:{stage}"})
