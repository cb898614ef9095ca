"""Rollouts: a step's prompts rendered (thinking modes, context budget) and sampled ``group_size``
times from the current policy through a rollout engine (HF ``generate`` or vLLM)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nemotron_cascade.rl.config import GRPOConfig, max_tokens_at


@dataclass
class RolloutBatch:
    """One step's rollouts, flattened group by group (prompt 0's G samples, then prompt 1's...)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    finished: list[bool]
    texts: list[str]
    rows: list[Mapping]


def thinking_modes(n: int, ratio: float, rng: random.Random) -> list[bool]:
    """Which of ``n`` prompts run in thinking mode: exactly ``round(ratio * n)`` of them, chosen at
    random, so a 0.5 ratio splits every batch in halves (the paper's equal allocation in RLHF)."""
    chosen = set(rng.sample(range(n), round(ratio * n)))
    return [i in chosen for i in range(n)]


def rollout(generator, tokenizer, rows: Sequence[Mapping], cfg: GRPOConfig, step: int, render_prompt,
            shard: tuple[int, int] = (0, 1)) -> RolloutBatch:
    """Sample ``group_size`` responses per row from the current policy.

    ``shard=(r, w)`` (data parallel): sample only the ``r``-th of ``w`` contiguous equal shares of
    ``rows``. Thinking modes are drawn for the whole of ``rows`` first, and the sampling seed is
    offset by the share's first row index, so a backend with per-prompt seeds (vLLM: ``seed + i``)
    samples each prompt as one process would.
    """
    from nemotron_cascade.generation.base import SamplingParams

    thinking = thinking_modes(len(rows), cfg.thinking_ratio, random.Random(cfg.seed * 1_000_003 + step))
    rank, world = shard
    if len(rows) % world:
        raise ValueError(f"{len(rows)} prompts do not split into {world} equal shares")
    per = len(rows) // world
    lo = rank * per
    rows, thinking = rows[lo:lo + per], thinking[lo:lo + per]
    if cfg.context_schedule:
        budget = max_tokens_at(step, cfg.context_schedule)
        count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
        prompts = [render_prompt(row, t, budget, count) for row, t in zip(rows, thinking)]
    else:
        prompts = [render_prompt(row, t) for row, t in zip(rows, thinking)]
    params = SamplingParams(max_new_tokens=max_tokens_at(step, cfg.length_schedule), temperature=cfg.temperature,
                            top_p=cfg.top_p, n=cfg.group_size, seed=cfg.seed * 1_000_003 + step + lo)
    groups = generator.generate(prompts, params)
    batch = RolloutBatch([], [], [], [], [])
    for prompt, row, group in zip(prompts, rows, groups):
        p_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        for c in group:
            batch.prompt_ids.append(p_ids)
            batch.completion_ids.append(list(c.token_ids))
            batch.finished.append(c.finished)
            batch.texts.append(c.text)
            batch.rows.append(row)
    return batch


def build_generator(cfg: GRPOConfig, model, tokenizer):
    """The rollout engine ``cfg.rollout_engine`` names, sampling from ``model``'s current weights.

    ``hf``: an :class:`~nemotron_cascade.generation.hf.HFGenerator` on ``model`` itself (it sees
    every update). ``vllm``: a :class:`~nemotron_cascade.generation.vllm_engine.VLLMGenerator`
    loaded from ``model`` and ``tokenizer`` saved to a temporary directory (``seed=cfg.seed`` and
    ``cfg.vllm`` as keyword arguments of ``from_pretrained``); it holds its own copy of the weights,
    which :func:`train_grpo` syncs after every optimiser step.
    """
    from nemotron_cascade.generation.engines import make_generator

    return make_generator(cfg.rollout_engine, model, tokenizer, cfg.rollout_batch_size, cfg.vllm, cfg.seed)
