"""Wiring of an RL stage: one template, namespaced per stage (``math_rl``, ``code_rl``, ...).

Stages differ only by their namespace, the checkpoint they read and their parameters (prompt
domains, reward name, GRPO knobs) — never by code that tests the stage's name.
"""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.rl_stage import nodes


def stage_template(with_reward_model: bool = False, localise: bool = False) -> Pipeline:
    """``policy_in`` + ``rl_prompts`` (+ ``reward_model``) → ``policy`` (+ its per-step GRPO curves).

    ``localise``: the prompts' context files are re-ranked, the policy's own guess interleaved with
    BM25's ranking (SWE RL; parameters ``localisation.top_k`` and ``localisation.max_new_tokens``).
    """
    rm = {"reward_model": "reward_model"} if with_reward_model else {}
    localised = [node(nodes.localise_prompts,
                      inputs={"policy": "policy_in", "prompts": "selected_prompts",
                              "top_k": "params:localisation.top_k",
                              "max_new_tokens": "params:localisation.max_new_tokens"},
                      outputs="prompts", name="localise_prompts")] if localise else []
    return pipeline([
        node(nodes.select_prompts,
             inputs={"rl_prompts": "rl_prompts", "domains": "params:domains",
                     "max_prompts": "params:max_prompts", "seed": "params:train.seed"},
             outputs="selected_prompts" if localise else "prompts", name="select_prompts"),
        *localised,
        node(nodes.train_rl_stage,
             inputs={"policy": "policy_in", "prompts": "prompts", "train": "params:train",
                     "reward": "params:reward", "stage": "params:name", "resume_dir": "params:resume_dir",
                     "diagnostics": "params:diagnostics", **rm},
             outputs=["policy", "train_history"], name="train_grpo"),
    ])


def create_pipeline(stage: str, input_checkpoint: str, reward_model: str | None = None, localise: bool = False,
                    **kwargs) -> Pipeline:
    """The RL stage ``stage`` reading ``<input_checkpoint>.policy`` (and the reward model dataset
    ``reward_model`` when given; localising its prompts with the policy when ``localise``);
    parameters under ``<stage>``."""
    inputs = {"policy_in": f"{input_checkpoint}.policy", "rl_prompts": "rl_prompts"}
    if reward_model:
        inputs["reward_model"] = reward_model
    return pipeline(stage_template(with_reward_model=bool(reward_model), localise=localise),
                    namespace=stage, inputs=inputs)
