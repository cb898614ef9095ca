"""Rewards that read a trained reward model: the RLHF reward and IF-RL's combined reward.

* :class:`RewardModelReward` — the RM's scalar score of (prompt, final answer). A response with no
  final answer (a think block never closed) scores one unit below the lowest answer of its batch:
  an unfinished response must never beat a finished one, whatever the RM thinks of an empty text.
* :class:`IFWithRMReward` — the paper's IF-RL reward for thinking models:
  ``r = R_IF + sigmoid(R̂_RM)`` when every instruction holds, else ``0``, where ``R̂_RM`` is the RM
  score normalised within the prompt's group (mean 0, std 1). Following the instructions is
  necessary; among the responses that do, the RM prefers the better answer.

Rows of a batch come group by group (``group_size`` consecutive responses per prompt), as the
GRPO trainer lays them out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from nemotron_cascade import chat
from nemotron_cascade.training.reward_model import render_scored, score_texts

log = logging.getLogger(__name__)

NO_ANSWER_MARGIN = 1.0


class RewardModelReward:
    """Batch reward: the reward model's score of each row's prompt with the response's final answer.

    The reward model runs on ``device`` (``None``: the stage's, :func:`~nemotron_cascade.training.placement.scope`:
    where the loop places the policy), moved there when the reward is built; texts follow it."""

    def __init__(self, checkpoint, max_length: int = 256, batch_size: int = 64, device: str | None = None):
        from nemotron_cascade.training import placement

        self.model, self.tokenizer = placement.place(checkpoint.model, device), checkpoint.tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.model.eval()

    def __call__(self, responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
        from nemotron_cascade.rewards.registry import _check_lengths, column

        _check_lengths("reward_model", responses, rows)
        prompts = column("reward_model", rows, "prompt")
        answers = [chat.final_answer(r) for r in responses]
        idx = [i for i, a in enumerate(answers) if a is not None]
        texts = [render_scored(prompts[i], answers[i]) for i in idx]
        scored = score_texts(self.model, self.tokenizer, texts, self.max_length, self.batch_size).tolist()
        floor = (min(scored) if scored else 0.0) - NO_ANSWER_MARGIN
        out = [floor] * len(responses)
        for i, s in zip(idx, scored):
            out[i] = s
        return out


def group_normalise(values: Sequence[float], group_size: int) -> list[float]:
    """``(v − mean) / (std + ε)`` within consecutive groups of ``group_size``: GRPO's own
    normalisation (:func:`~nemotron_cascade.rl.grpo.group_advantages`), as a list."""
    import torch

    from nemotron_cascade.rl.grpo import group_advantages

    return group_advantages(torch.tensor(list(values), dtype=torch.float32), group_size).tolist()


class IFWithRMReward:
    """``R_IF + sigmoid(group-normalised RM score)`` when all instructions hold, else 0."""

    def __init__(self, if_reward_fn, rm_reward: RewardModelReward, group_size: int):
        self.if_reward_fn, self.rm_reward, self.group_size = if_reward_fn, rm_reward, group_size

    def __call__(self, responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
        r_if = self.if_reward_fn(responses, rows)
        rm = group_normalise(self.rm_reward(responses, rows), self.group_size)
        return [(f + 1.0 / (1.0 + math.exp(-s))) if f >= 1.0 else 0.0 for f, s in zip(r_if, rm)]
