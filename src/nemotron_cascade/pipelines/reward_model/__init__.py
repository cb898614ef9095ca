"""The reward model feeding RLHF (and IF-RL's combined reward): Bradley–Terry on preference pairs."""

from nemotron_cascade.pipelines.reward_model.pipeline import create_pipeline

__all__ = ["create_pipeline"]
