"""The on-policy GRPO loop shared by every RL stage of the cascade.

Variant (DESIGN.md §4, the paper's): per step, ``prompts_per_step`` prompts are drawn, ``group_size``
responses sampled for each from the *current* policy (temperature sampling, no top-k), scored by the
stage's reward (a name in :mod:`nemotron_cascade.rewards.registry`), turned into group-normalised
advantages and used for exactly one AdamW step (strict on-policy: importance ratio 1, no clipping,
no KL, no reference model). The loss is token-level over the whole rollout batch
(:func:`~nemotron_cascade.rl.grpo.policy_loss`), computed in micro-batches with gradient accumulation.

Around that core, the knobs of the paper's stages:

* **thinking ratio** — the share of each batch's prompts rendered in thinking mode (``/think``),
  exactly (rounded); the rest ``/no_think``. RLHF runs both modes with equal allocation (0.5), Math/Code RL thinking only (1.0).
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
history) is saved every ``checkpoint_every`` steps through write-then-rename, and a rerun with the
same fingerprint resumes exactly (rollout seeds are derived from the step, not from a global stream).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from nemotron_cascade.rl.grpo import group_advantages, policy_loss
from nemotron_cascade.training import resume as resume_lib
from nemotron_cascade.training.faults import FaultGuard, is_finite
from nemotron_cascade.training.sft import dataclass_from_params

log = logging.getLogger(__name__)

RewardFn = Callable[[Sequence[str], Sequence[Mapping]], list[float]]
MetricsCallback = Callable[[dict, int], None]


@dataclass(frozen=True)
class GRPOConfig:
    """Flat hyper-parameters of one GRPO stage."""

    max_steps: int = 40
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 3e-5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    thinking_ratio: float = 1.0
    length_schedule: tuple = ((0, 128),)
    # input-context curriculum, ``[[from_step, max_prompt_tokens], ...]``; empty: prompts as rendered
    context_schedule: tuple = ()
    overlong_filter: bool = True
    dynamic_filter: bool = True
    readmit_prob: float = 0.1
    shuffle_rewards: bool = False
    micro_batch_size: int = 32  # sequences per forward/backward (gradients accumulate over the batch)
    rollout_batch_size: int = 64  # sequences per generate call
    checkpoint_every: int = 10
    max_bad_steps: int = 3  # steps with a NaN/inf reward, loss or grad skipped in a row before the run stops
    seed: int = 0

    def __post_init__(self):
        if self.max_steps < 1 or self.prompts_per_step < 1 or self.group_size < 2:
            raise ValueError(f"GRPO needs max_steps ≥ 1, prompts_per_step ≥ 1 and group_size ≥ 2, got "
                             f"{self.max_steps}, {self.prompts_per_step}, {self.group_size}")
        if not 0.0 <= self.thinking_ratio <= 1.0:
            raise ValueError(f"thinking_ratio must be in [0, 1], got {self.thinking_ratio}")
        for name in ("length_schedule", "context_schedule"):
            schedule = getattr(self, name)
            if (schedule or name == "length_schedule") and (not schedule or schedule[0][0] != 0):
                raise ValueError(f"{name} must start at step 0, got {schedule}")


def config_from_params(params: Mapping) -> GRPOConfig:
    """A :class:`GRPOConfig` from a parameters mapping (YAML lists become tuples)."""
    return dataclass_from_params(GRPOConfig, params)


def max_tokens_at(step: int, schedule: Sequence[Sequence[int]]) -> int:
    """The response-length limit at ``step``: the last schedule entry whose start is ≤ step."""
    limit = schedule[0][1]
    for start, tokens in schedule:
        if step >= start:
            limit = tokens
    return int(limit)


def lr_at(step: int, cfg: GRPOConfig) -> float:
    """LR multiplier: linear warm-up, then constant (the paper's RL stages use a constant LR)."""
    return min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0


# --------------------------------------------------------------------------------------------
class PromptPool:
    """Epochs over the prompts, with the paper's per-epoch dynamic filtering.

    Within an epoch prompts come in a seeded shuffled order. When an epoch ends, prompts whose
    group had zero reward variance (all right or all wrong, so no gradient) are left out of the
    next epoch, each re-admitted with probability ``readmit_prob``; if filtering would empty the
    pool, the whole set comes back. The state is a small dict, saved with the training state.
    """

    def __init__(self, n: int, seed: int, dynamic_filter: bool, readmit_prob: float):
        if n < 1:
            raise ValueError("the RL stage has no prompts")
        self.n, self.seed, self.dynamic, self.readmit = n, seed, dynamic_filter, readmit_prob
        self.epoch, self.pos, self.order = 0, 0, self._shuffle(list(range(n)), 0)
        self.uninformative: set[int] = set()
        self.filtered = 0

    def _shuffle(self, ids: list[int], epoch: int) -> list[int]:
        random.Random(self.seed * 7919 + epoch).shuffle(ids)
        return ids

    def take(self, k: int) -> list[int]:
        """The next ``k`` prompt indices (crossing into new epochs as needed)."""
        out = []
        while len(out) < k:
            if self.pos >= len(self.order):
                self._next_epoch()
            take = self.order[self.pos:self.pos + k - len(out)]
            out += take
            self.pos += len(take)
        return out

    def report(self, idx: int, zero_variance: bool) -> None:
        """Record whether prompt ``idx``'s group this epoch carried no signal."""
        (self.uninformative.add if zero_variance else self.uninformative.discard)(idx)

    def _next_epoch(self) -> None:
        self.epoch += 1
        keep = list(range(self.n))
        if self.dynamic:
            r = random.Random(self.seed * 104_729 + self.epoch)
            keep = [i for i in keep if i not in self.uninformative or r.random() < self.readmit]
            if not keep:
                keep = list(range(self.n))
        self.filtered = self.n - len(keep)
        self.uninformative = set()
        self.order, self.pos = self._shuffle(keep, self.epoch), 0
        log.info("epoch %d: %d prompts (%d filtered as all-right/all-wrong)", self.epoch, len(keep), self.filtered)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "order": list(self.order),
                "uninformative": sorted(self.uninformative), "filtered": self.filtered}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos, self.order = s["epoch"], s["pos"], list(s["order"])
        self.uninformative, self.filtered = set(s["uninformative"]), s["filtered"]


# --------------------------------------------------------------------------------------------
@dataclass
class RolloutBatch:
    """One step's rollouts, flattened group by group (prompt 0's G samples, then prompt 1's...)."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    finished: list[bool]
    texts: list[str]
    rows: list[Mapping]


def sequence_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int):
    """Per-token log-probs of the completions under ``model`` (with grad), their mask and entropy.

    Sequences are ``prompt + completion``, right-padded. Returns ``(logprobs [B,T], mask [B,T],
    entropy [B,T])`` aligned to completion positions (``T`` = longest completion).
    """
    import torch

    seqs = [p + c for p, c in zip(prompt_ids, completion_ids)]
    L, T = max(map(len, seqs)), max(1, max(map(len, completion_ids)))
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), L), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)], attn[b, :len(s)] = torch.tensor(s), 1
    dev = next(model.parameters()).device  # tensors follow the model (CPU here, a GPU at scale)
    logits = model(input_ids=ids.to(dev), attention_mask=attn.to(dev), use_cache=False).logits.float()
    # the token at position j is predicted by logits at j-1: completion token k of sample b sits at
    # len(prompt_b) + k, predicted from len(prompt_b) + k - 1
    index = torch.zeros((len(seqs), T), dtype=torch.long)
    mask = torch.zeros((len(seqs), T))
    targets = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        n = len(c)
        index[b, :n] = torch.arange(len(p) - 1, len(p) - 1 + n)
        targets[b, :n], mask[b, :n] = torch.tensor(c, dtype=torch.long), 1.0
    index, mask, targets = index.to(dev), mask.to(dev), targets.to(dev)
    picked = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.size(-1)))  # [B,T,V]
    logp_all = torch.log_softmax(picked, dim=-1)
    logprobs = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).detach()
    return logprobs, mask, entropy


def thinking_modes(n: int, ratio: float, rng: random.Random) -> list[bool]:
    """Which of ``n`` prompts run in thinking mode: exactly ``round(ratio * n)`` of them, chosen at
    random, so a 0.5 ratio splits every batch in halves (the paper's equal allocation in RLHF)."""
    chosen = set(rng.sample(range(n), round(ratio * n)))
    return [i in chosen for i in range(n)]


def rollout(generator, tokenizer, rows: Sequence[Mapping], cfg: GRPOConfig, step: int, render_prompt) -> RolloutBatch:
    """Sample ``group_size`` responses per row from the current policy."""
    from nemotron_cascade.generation.base import SamplingParams

    thinking = thinking_modes(len(rows), cfg.thinking_ratio, random.Random(cfg.seed * 1_000_003 + step))
    if cfg.context_schedule:
        budget = max_tokens_at(step, cfg.context_schedule)
        count = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
        prompts = [render_prompt(row, t, budget, count) for row, t in zip(rows, thinking)]
    else:
        prompts = [render_prompt(row, t) for row, t in zip(rows, thinking)]
    params = SamplingParams(max_new_tokens=max_tokens_at(step, cfg.length_schedule), temperature=cfg.temperature,
                            top_p=cfg.top_p, n=cfg.group_size, seed=cfg.seed * 1_000_003 + step)
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


def score(batch: RolloutBatch, reward_fn: RewardFn, cfg: GRPOConfig, step: int):
    """Rewards of a batch (optionally shuffled, the control) and their group advantages."""
    import torch

    rewards = torch.tensor(reward_fn(batch.texts, batch.rows), dtype=torch.float32)
    if rewards.numel() != len(batch.texts):
        raise ValueError(f"reward returned {rewards.numel()} scores for {len(batch.texts)} responses")
    trained = rewards
    if cfg.shuffle_rewards:
        g = torch.Generator().manual_seed(cfg.seed * 31 + step)
        trained = rewards[torch.randperm(rewards.numel(), generator=g)]
    return rewards, trained, group_advantages(trained, cfg.group_size)


def grpo_step(model, opt, batch: RolloutBatch, advantages, cfg: GRPOConfig, pad_id: int,
              guard: FaultGuard | None = None, step: int = 0) -> dict:
    """One optimiser step on one rollout batch; token-level loss over the whole batch.

    A non-finite micro-batch loss or gradient norm skips the optimiser step (``guard`` counts it
    as step ``step``; see :mod:`nemotron_cascade.training.faults`).
    """
    import torch

    guard = guard or FaultGuard("GRPO", cfg.max_bad_steps)

    keep = torch.tensor([f or not cfg.overlong_filter for f in batch.finished], dtype=torch.float32)
    total_tokens = sum(len(c) * k for c, k in zip(batch.completion_ids, keep.tolist()))
    if total_tokens == 0:
        log.warning("every response of this batch was truncated and overlong_filter masks them all: "
                    "no gradient this step (raise the length_schedule or turn overlong_filter off)")
    opt.zero_grad(set_to_none=True)
    loss_sum, ent_sum, ent_n = 0.0, 0.0, 0.0
    bad_loss, grad_norm = None, None
    n = len(batch.texts)
    for s in range(0, n, cfg.micro_batch_size):
        sl = slice(s, s + cfg.micro_batch_size)
        logprobs, mask, entropy = sequence_logprobs(model, batch.prompt_ids[sl], batch.completion_ids[sl], pad_id)
        mask = mask * keep[sl].unsqueeze(1).to(mask.device)
        # policy_loss normalises by this micro-batch's tokens; rescale so the sum over micro-batches
        # is the token mean over the whole batch
        share = float(mask.sum()) / max(1.0, total_tokens)
        loss = policy_loss(logprobs, advantages[sl].to(logprobs.device), mask) * share
        if not is_finite(loss):  # never backpropagated; the step is skipped below
            bad_loss, loss_sum = loss.detach(), float("nan")
            break
        loss.backward()
        loss_sum += float(loss.detach())
        ent_sum += float((entropy * mask).sum())
        ent_n += float(mask.sum())
    if bad_loss is None:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if guard.healthy(step, loss=bad_loss, grad_norm=grad_norm):
        opt.step()
    else:
        opt.zero_grad(set_to_none=True)
    return {"loss": loss_sum, "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
            "entropy": ent_sum / max(1.0, ent_n), "trained_tokens": total_tokens}


def train_grpo(
    model,
    tokenizer,
    rows: Sequence[Mapping],
    reward_fn: RewardFn,
    cfg: GRPOConfig,
    generator,
    render_prompt: Callable[..., str],
    on_metrics: MetricsCallback | None = None,
    resume_dir: str | None = None,
    fingerprint: str = "",
    diagnostics: Callable[[Sequence[str], Sequence[Mapping], Sequence[float]], dict] | None = None,
    keep_final_state: bool = False,
    reward_name: str | None = None,
) -> list[dict]:
    """Train ``model`` in place with GRPO on ``rows``; return the per-step metrics history.

    ``generator`` samples from ``model`` (it must see the updated weights every step: HF generate on
    the same module, or an engine that syncs them); ``render_prompt(row, thinking)`` gives the prompt
    text (``render_prompt(row, thinking, max_prompt_tokens, count_tokens)`` under a context schedule). ``reward_fn(responses, rows)`` scores the whole batch. ``diagnostics(responses, rows,
    rewards)`` adds metrics to each step's record (see :mod:`nemotron_cascade.rl.diagnostics`).

    A step whose rewards (``reward_name`` names the reward in the warning), loss or gradient norm
    contain NaN/inf makes no update; more than ``cfg.max_bad_steps`` in a row stop the run
    (:mod:`nemotron_cascade.training.faults`).
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    pool = PromptPool(len(rows), cfg.seed, cfg.dynamic_filter, cfg.readmit_prob)
    state = resume_lib.load(resume_dir, fingerprint, model, opt, sched) if resume_dir else None
    start, history = 0, []
    if state:
        start, history = state["step"], state["history"]
        pool.load_state_dict(state["extra"]["pool"])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    guard = FaultGuard("GRPO", cfg.max_bad_steps)
    reward_name = reward_name or getattr(reward_fn, "__name__", None) or repr(reward_fn)
    bar = tqdm(range(start, cfg.max_steps), desc="grpo", initial=start, total=cfg.max_steps, leave=False)
    for step in bar:
        t0 = time.perf_counter()
        idx = pool.take(cfg.prompts_per_step)
        batch = rollout(generator, tokenizer, [rows[i] for i in idx], cfg, step, render_prompt)
        t_gen = time.perf_counter() - t0
        rewards, trained, adv = score(batch, reward_fn, cfg, step)
        groups = trained.view(-1, cfg.group_size)
        zero_var = (groups.max(1).values == groups.min(1).values).tolist()
        for i, z in zip(idx, zero_var):
            pool.report(i, z)
        if guard.healthy(step + 1, f"from reward {reward_name!r}", reward=rewards):
            model.train()
            m = grpo_step(model, opt, batch, adv, cfg, pad_id, guard, step + 1)
        else:  # a NaN/inf reward poisons its group's advantages: no update this step
            m = {"loss": float("nan"), "grad_norm": float("nan"), "entropy": float("nan"), "trained_tokens": 0}
        sched.step()
        model.eval()
        dt = time.perf_counter() - t0
        lengths = [len(c) for c in batch.completion_ids]
        m.update({
            "reward": float(rewards.mean()), "accuracy": float((rewards >= 1.0).float().mean()),
            "response_length": sum(lengths) / len(lengths), "response_length_max": max(lengths),
            "truncation_rate": 1 - sum(batch.finished) / len(batch.finished),
            "zero_variance_groups": sum(zero_var) / len(zero_var), "lr": sched.get_last_lr()[0],
            "max_new_tokens": max_tokens_at(step, cfg.length_schedule), "epoch": pool.epoch,
            "prompt_length": sum(map(len, batch.prompt_ids)) / len(batch.prompt_ids),
            "filtered_prompts": pool.filtered, "completion_tokens_per_s": sum(lengths) / dt,
            "steps_per_s": 1.0 / dt, "rollout_share": t_gen / dt,
        })
        if cfg.context_schedule:
            m["max_prompt_tokens"] = max_tokens_at(step, cfg.context_schedule)
        if diagnostics:
            m.update(diagnostics(batch.texts, batch.rows, rewards.tolist()))
        history.append({"step": step + 1, **m})
        bar.set_postfix(reward=f"{m['reward']:.2f}", acc=f"{m['accuracy']:.2f}")
        if on_metrics:
            on_metrics(m, step + 1)
        if resume_dir and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.max_steps:
            resume_lib.save(resume_dir, fingerprint, model, opt, sched, step + 1, history,
                            extra={"pool": pool.state_dict()})
    model.eval()
    if resume_dir and keep_final_state:  # the caller clears it once the checkpoint is safely saved
        if start < cfg.max_steps:
            resume_lib.save(resume_dir, fingerprint, model, opt, sched, cfg.max_steps, history,
                            extra={"pool": pool.state_dict()})
    elif resume_dir:
        resume_lib.clear(resume_dir)
    return history
