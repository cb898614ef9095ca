"""Wiring of the reward model: ``<input>.policy`` + ``preference_pairs`` → ``reward_model.model``."""

from kedro.pipeline import Pipeline, node, pipeline

from nemotron_cascade.pipelines.reward_model import nodes


def create_pipeline(input_checkpoint: str = "sft.stage2", **kwargs) -> Pipeline:
    """Train the RM from ``<input_checkpoint>.policy``; parameters ``params:reward_model``."""
    return pipeline([
        node(nodes.train_reward_model_node,
             inputs={"policy": "policy_in", "preference_pairs": "preference_pairs", "config": "params:config"},
             outputs=["model", "train_history"], name="train_reward_model"),
    ], namespace="reward_model", parameters={"params:config": "params:reward_model"},
        inputs={"policy_in": f"{input_checkpoint}.policy", "preference_pairs": "preference_pairs"})
