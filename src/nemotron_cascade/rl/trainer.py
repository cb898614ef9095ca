"""The on-policy GRPO loop shared by every RL stage of the cascade.

Variant (docs/design.md "Contracts", the paper's): per step, ``prompts_per_step`` prompts are drawn, ``group_size``
responses sampled for each from the *current* policy (temperature sampling, no top-k), scored by the
stage's reward (a name in :mod:`nemotron_cascade.rewards.registry`), turned into group-normalised
advantages and used for exactly one AdamW step (strict on-policy: importance ratio 1, no clipping,
no KL, no reference model). The loss is token-level over the whole rollout batch
(:func:`~nemotron_cascade.rl.grpo.policy_loss`), computed in micro-batches with gradient accumulation.

Around that core, the knobs of the paper's stages:

* **thinking ratio** — the share of each batch's prompts rendered in thinking mode (``/think``),
  exactly (rounded); the rest ``/no_think``. RLHF runs both modes with equal allocation (0.5),
  Math/Code RL thinking only (1.0).
* **response-length curriculum** — ``length_schedule`` is ``[[from_step, max_new_tokens], ...]``,
  the paper's 24K → 32K → 40K scaled to the profile.
* **input-context curriculum** — ``context_schedule`` is ``[[from_step, max_prompt_tokens], ...]``
  (SWE RL's 16K → 24K): prompts keep as much of their context (localised files) as fits.
* **overlong filtering** — with ``overlong_filter`` a truncated response is masked out of the loss
  (DAPO's overlong filtering); without it (Code RL) it is trained on with the reward it got.
* **per-epoch dynamic filtering** — a prompt whose group had zero reward variance in the epoch
  (all right or all wrong) leaves the pool for the next epoch, re-admitted with probability
  ``readmit_prob`` (:class:`PromptPool`).
* **shuffled-reward control** — ``shuffle_rewards`` permutes the rewards across the batch before
  the advantages: same machinery, no signal. Used to show that gains come from the reward.

Everything a crash would lose (model, optimiser, scheduler, RNG, pool position and filter state,
history) is saved every ``checkpoint_every`` steps through write-then-rename (DeepSpeed: its own
sharded checkpoint, committed the same way), and a rerun with the same fingerprint resumes exactly
(rollout seeds are derived from the step, not from a global stream).

Engines: the update goes through a training engine (``engine``: plain ``torch``, or ``deepspeed``
ZeRO data parallel under torchrun, :mod:`nemotron_cascade.training.engines`), the rollouts through a
rollout engine (``rollout_engine``: ``hf`` generate on the trained module, or ``vllm`` with a weight
sync after every optimiser step). See :func:`train_grpo` and docs/scale_out.md.

Modules: :mod:`~nemotron_cascade.rl.config` (the knobs), :mod:`~nemotron_cascade.rl.pool` (the
prompt pool), :mod:`~nemotron_cascade.rl.rollout` (sampling), :mod:`~nemotron_cascade.rl.update`
(rewards, advantages and the optimiser step); the loop around them is
:func:`nemotron_cascade.training.loop.train_loop`'s, shared with SFT and the reward model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemotron_cascade.rewards.registry import RewardFn
from nemotron_cascade.rl.config import GRPOConfig, loop_settings, max_tokens_at
from nemotron_cascade.rl.pool import PromptPool
from nemotron_cascade.rl.rollout import RolloutBatch, build_generator, rollout, thinking_modes
from nemotron_cascade.rl.update import batch_stats, grpo_step, score, sequence_logprobs
from nemotron_cascade.training import engines
from nemotron_cascade.training.loop import Loop, MetricsCallback, Resume, StepFn, train_loop

log = logging.getLogger(__name__)

__all__ = ["GRPOConfig", "PromptPool", "RolloutBatch", "build_generator", "grpo_step",
           "max_tokens_at", "rollout", "score", "sequence_logprobs", "thinking_modes", "train_grpo"]

Diagnostics = Callable[[Sequence[str], Sequence[Mapping], Sequence[float]], dict]


def train_grpo(model, tokenizer, rows: Sequence[Mapping], reward_fn: RewardFn, cfg: GRPOConfig, generator,
               render_prompt: Callable[..., str], on_metrics: MetricsCallback | None = None,
               resume_dir: str | None = None, fingerprint: str = "", diagnostics: Diagnostics | None = None,
               keep_final_state: bool = False, reward_name: str | None = None) -> list[dict]:
    """Train ``model`` in place with GRPO on ``rows``; return the per-step metrics history.

    ``generator`` samples from ``model`` (it must see the updated weights every step: HF generate on
    the same module, or an engine that syncs them); ``None`` builds the one ``cfg.rollout_engine``
    names (:func:`~nemotron_cascade.rl.rollout.build_generator`). With ``rollout_engine: vllm`` the
    generator must have ``sync_weights`` (a :class:`~nemotron_cascade.generation.vllm_engine.VLLMGenerator`):
    it gets the trainer's weights before the first rollout and after every optimiser step (the full
    state dict, gathered on every rank under ZeRO-3: ``state_dict_for_save``). ``render_prompt(row,
    thinking)`` gives the prompt text (``render_prompt(row, thinking, max_prompt_tokens,
    count_tokens)`` under a context schedule). ``reward_fn(responses, rows)`` scores the batch.
    ``diagnostics(responses, rows, rewards)`` adds metrics to each step's record (see
    :mod:`nemotron_cascade.rl.diagnostics`). Activation checkpointing (``cfg.gradient_checkpointing``)
    applies to the training forward/backward; rollouts run in eval mode with the KV cache.

    A step whose rewards (``reward_name`` names the reward in the warning), loss or gradient norm
    contain NaN/inf makes no update; more than ``cfg.max_bad_steps`` in a row stop the run
    (:mod:`nemotron_cascade.training.faults`).

    ``cfg.engine: deepspeed`` (under a launcher, world size ``w``): every rank takes the same prompts
    from the pool and samples and scores its ``r``-th share of them (``prompts_per_step / w``); the
    rewards are gathered, so advantages, the shuffled control, the prompt filter and the logged
    metrics are those of the whole batch on every rank (``diagnostics`` see the rank's share), and
    the update is :func:`~nemotron_cascade.rl.update.grpo_step`'s data-parallel loss. ``on_metrics``
    runs on rank 0 only; at the end the model is a plain, full module on every rank.

    Mid-stage resume (``resume_dir``, ``fingerprint``): :func:`~nemotron_cascade.training.loop.train_loop`'s,
    with the pool's position and filter state; a generator that keeps state between calls
    (``state_dict``/``load_state_dict``, such as the tests' fixed rollouts; the HF and vLLM engines
    are seeded per step and have none) has it saved too, per rank.
    """
    world = engines.launched_world_size() if cfg.engine != "torch" else 1
    if cfg.prompts_per_step % world:
        raise ValueError(f"GRPO prompts_per_step {cfg.prompts_per_step} is not divisible by the world size {world}")
    pool = PromptPool(len(rows), cfg.seed, cfg.dynamic_filter, cfg.readmit_prob)
    if generator is None:
        generator = build_generator(cfg, model, tokenizer)  # before the engine (ZeRO-3 partitions the weights)
    if cfg.rollout_engine == "vllm" and not hasattr(generator, "sync_weights"):
        raise TypeError(f"rollout_engine 'vllm' needs a generator with sync_weights (a VLLMGenerator), "
                        f"got {type(generator).__name__}")
    stage = GRPOStage(tokenizer, rows, reward_fn, cfg, render_prompt, generator, pool, diagnostics,
                      reward_name or getattr(reward_fn, "__name__", None) or repr(reward_fn))
    return train_loop(model, loop_settings(cfg, world), stage.step_fn,
                      resume=Resume(resume_dir, fingerprint, keep_final_state), on_metrics=on_metrics,
                      state={"pool": pool}, rank_state={"generator": generator})


@dataclass
class GRPOStage:
    """What one GRPO step needs besides the loop: the data, the reward, the rollout engine, the pool."""

    tokenizer: Any
    rows: Sequence[Mapping]
    reward_fn: RewardFn
    cfg: GRPOConfig
    render_prompt: Callable[..., str]
    generator: Any
    pool: PromptPool
    diagnostics: Diagnostics | None
    reward_name: str

    def sync_weights(self, loop: Loop) -> None:
        """The rollout engine gets the trainer's weights (every rank: under ZeRO-3 the gather is a collective)."""
        if self.cfg.rollout_engine == "vllm":
            self.generator.sync_weights(loop.engine.state_dict_for_save().items())

    def step_fn(self, loop: Loop) -> StepFn:
        """The step of :func:`train_grpo`: rollouts, rewards, one guarded update, the step's metrics."""
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.sync_weights(loop)  # the engine starts from the trainer's weights (a resume, an engine built elsewhere)

        def step(i: int) -> dict:
            t0 = time.perf_counter()
            idx = self.pool.take(self.cfg.prompts_per_step)
            batch = rollout(self.generator, tok, [self.rows[j] for j in idx], self.cfg, i, self.render_prompt,
                            (loop.engine.rank, loop.engine.world_size))
            t_gen = time.perf_counter() - t0
            m, rewards, zero_var = self.update(loop, batch, idx, i, pad_id)
            dt = time.perf_counter() - t0
            m.update(self.step_metrics(loop, batch, rewards, zero_var, i))
            m.update({"completion_tokens_per_s": m["completion_tokens"] / dt, "steps_per_s": 1.0 / dt,
                      "rollout_share": t_gen / dt})
            del m["completion_tokens"]
            return m

        return step

    def update(self, loop: Loop, batch: RolloutBatch, idx: list[int], i: int, pad_id: int):
        """Score the batch, report each group's variance to the pool, take the guarded step."""
        eng, cfg = loop.engine, self.cfg
        rewards, trained, adv = score(batch, self.reward_fn, cfg, i, eng)
        groups = trained.view(-1, cfg.group_size)
        zero_var = (groups.max(1).values == groups.min(1).values).tolist()
        for j, z in zip(idx, zero_var):
            self.pool.report(j, z)
        per = cfg.prompts_per_step // eng.world_size * cfg.group_size
        if loop.guard.healthy(i + 1, f"from reward {self.reward_name!r}", reward=rewards):
            loop.model.train()
            m = grpo_step(loop.model, loop.opt, batch, adv[eng.rank * per:(eng.rank + 1) * per], cfg, pad_id,
                          loop.guard, i + 1, eng)
        else:  # a NaN/inf reward poisons its group's advantages: no update this step
            m = {"loss": float("nan"), "grad_norm": float("nan"), "entropy": float("nan"), "trained_tokens": 0}
        loop.model.eval()
        self.sync_weights(loop)
        return m, rewards, zero_var

    def step_metrics(self, loop: Loop, batch: RolloutBatch, rewards, zero_var: list[bool], i: int) -> dict:
        """Rewards, lengths, truncation, filtering and schedule values of step ``i`` (the whole batch)."""
        cfg, eng = self.cfg, loop.engine
        lengths, finished, prompt_lengths = batch_stats(batch, eng)
        m = {"reward": float(rewards.mean()), "accuracy": float((rewards >= 1.0).float().mean()),
             "response_length": sum(lengths) / len(lengths), "response_length_max": max(lengths),
             "truncation_rate": 1 - sum(finished) / len(finished),
             "zero_variance_groups": sum(zero_var) / len(zero_var),
             "max_new_tokens": max_tokens_at(i, cfg.length_schedule), "epoch": self.pool.epoch,
             "prompt_length": sum(prompt_lengths) / len(prompt_lengths),
             "filtered_prompts": self.pool.filtered, "completion_tokens": sum(lengths)}
        if cfg.context_schedule:
            m["max_prompt_tokens"] = max_tokens_at(i, cfg.context_schedule)
        if self.diagnostics:
            per = cfg.prompts_per_step // eng.world_size * cfg.group_size
            m.update(self.diagnostics(batch.texts, batch.rows, rewards[eng.rank * per:(eng.rank + 1) * per].tolist()))
        return m
