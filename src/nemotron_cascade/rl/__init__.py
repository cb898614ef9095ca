"""Cascade RL: GRPO math (pure tensor functions) and, next, the on-policy loop."""
