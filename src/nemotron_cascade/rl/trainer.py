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
history) is saved every ``checkpoint_every`` steps through write-then-rename (DeepSpeed: its own
sharded checkpoint, committed the same way), and a rerun with the same fingerprint resumes exactly
(rollout seeds are derived from the step, not from a global stream).

Engines: the update goes through a training engine (``engine``: plain ``torch``, or ``deepspeed``
ZeRO data parallel under torchrun, :mod:`nemotron_cascade.training.engines`), the rollouts through a
rollout engine (``rollout_engine``: ``hf`` generate on the trained module, or ``vllm`` with a weight
sync after every optimiser step). See :func:`train_grpo` and docs/scale_out.md.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from nemotron_cascade.rl.grpo import group_advantages, policy_loss
from nemotron_cascade.training import engines
from nemotron_cascade.training import resume as resume_lib
from nemotron_cascade.training.faults import FaultGuard, guarded_step, is_finite
from nemotron_cascade.training.sft import dataclass_from_params

log = logging.getLogger(__name__)

RewardFn = Callable[[Sequence[str], Sequence[Mapping]], list[float]]
MetricsCallback = Callable[[dict, int], None]
ROLLOUT_ENGINES = ("hf", "vllm")


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
    # training engine (training/engines.py): "torch" (one process) or "deepspeed" (ZeRO; launch with
    # torchrun, every rank samples and trains on prompts_per_step / world_size prompts of each step)
    engine: str = "torch"
    deepspeed: dict | str | None = None  # config dict, JSON path, or "zero2"/"zero3" in conf/gpu/deepspeed/
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for compute)
    # rollout engine: "hf" (transformers generate on the trained module) or "vllm"
    # (generation/vllm_engine.VLLMGenerator, its weights synced after every optimiser step)
    rollout_engine: str = "hf"
    vllm: dict | None = None  # keyword arguments of VLLMGenerator.from_pretrained (sleep_level, ...)

    def __post_init__(self):
        if self.engine not in engines.KINDS or self.rollout_engine not in ROLLOUT_ENGINES:
            raise ValueError(f"GRPO engine must be one of {engines.KINDS} and rollout_engine one of "
                             f"{ROLLOUT_ENGINES}, got {self.engine!r}, {self.rollout_engine!r}")
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


def gather_shards(x, engine):
    """Rank ``r``'s ``x`` ``[n, ...]`` placed at rows ``[r*n, (r+1)*n)`` of a ``[w*n, ...]`` tensor,
    the same on every rank (a sum of zero-padded copies; a NaN stays a NaN). ``x`` as is for w = 1."""
    if engine.world_size == 1:
        return x
    dev = next(engine.module.parameters()).device  # the collective's device (CPU for gloo)
    full = x.new_zeros((engine.world_size * x.shape[0], *x.shape[1:]), device=dev)
    full[engine.rank * x.shape[0]:(engine.rank + 1) * x.shape[0]] = x.to(dev)
    return engine.all_reduce_sum(full).to(x.device)


def score(batch: RolloutBatch, reward_fn: RewardFn, cfg: GRPOConfig, step: int, engine=None):
    """Rewards of a batch (optionally shuffled, the control) and their group advantages.

    With a data-parallel ``engine`` (world size > 1) ``batch`` is this rank's share and the rewards
    of every rank are gathered first (:func:`gather_shards`): the returned ``rewards``, ``trained``
    and advantages are those of the whole step's batch, the same on every rank, so that the shuffled
    control permutes the whole batch as one process would.
    """
    import torch

    rewards = torch.tensor(reward_fn(batch.texts, batch.rows), dtype=torch.float32)
    if rewards.numel() != len(batch.texts):
        raise ValueError(f"reward returned {rewards.numel()} scores for {len(batch.texts)} responses")
    if engine is not None:
        rewards = gather_shards(rewards, engine)
    trained = rewards
    if cfg.shuffle_rewards:
        g = torch.Generator().manual_seed(cfg.seed * 31 + step)
        trained = rewards[torch.randperm(rewards.numel(), generator=g)]
    return rewards, trained, group_advantages(trained, cfg.group_size)


def grpo_step(model, opt, batch: RolloutBatch, advantages, cfg: GRPOConfig, pad_id: int,
              guard: FaultGuard | None = None, step: int = 0, engine=None) -> dict:
    """One optimiser step on one rollout batch; token-level loss over the whole batch.

    The update goes through ``engine`` (:mod:`~nemotron_cascade.training.engines`; default a plain
    torch engine on ``model`` and ``opt``), micro-batch by micro-batch with gradient accumulation.
    Micro-batch ``i`` contributes ``policy_loss_i · w · N_i / N``: ``policy_loss`` normalises by
    its own ``N_i`` unmasked tokens, ``N`` is the step's global count and ``w`` the world size. Data
    parallel (``w`` > 1), ``batch`` and ``advantages`` are this rank's share of the step's batch and
    ``N`` is all-reduced, so rank ``r``'s loss is

        L_r = −w · Σ_{b∈r} Σ_t A_b · logp_{b,t} · mask_{b,t} / N

    and the mean over ranks that DeepSpeed applies to the gradients is the single-process gradient
    of ``−Σ_b Σ_t A_b · logp_{b,t} · mask_{b,t} / N``. The returned ``loss`` and ``entropy`` are
    those of the whole batch (all-reduced) on every rank.

    A non-finite micro-batch loss or gradient norm skips the optimiser step (``guard`` counts it
    as step ``step``; see :mod:`nemotron_cascade.training.faults`). The torch engine stops at the
    bad micro-batch and never backpropagates it. An engine that skips non-finite steps itself
    (DeepSpeed) needs the same backward calls on every rank (ZeRO's collectives) and a way to drop
    what earlier micro-batches accumulated: the bad loss is backpropagated times NaN, the global
    gradient norm is then NaN, and DeepSpeed's step discards the update on every rank.
    """
    import torch

    guard = guard or FaultGuard("GRPO", cfg.max_bad_steps)
    eng = engine or engines.TorchEngine(model, opt, cfg.grad_clip)
    model, w = eng.forward_module, eng.world_size
    dev = next(model.parameters()).device

    keep = torch.tensor([f or not cfg.overlong_filter for f in batch.finished], dtype=torch.float32)
    total_tokens = sum(len(c) * k for c, k in zip(batch.completion_ids, keep.tolist()))
    if w > 1:  # N: the unmasked tokens of every rank's share
        total_tokens = float(eng.all_reduce_sum(torch.tensor(float(total_tokens), dtype=torch.float64, device=dev)))
    if total_tokens == 0:
        log.warning("every response of this batch was truncated and overlong_filter masks them all: "
                    "no gradient this step (raise the length_schedule or turn overlong_filter off)")
    eng.zero_grad()
    loss_sum, ent_sum, ent_n = 0.0, 0.0, 0.0
    bad_loss = None
    n = len(batch.texts)
    for s in range(0, n, cfg.micro_batch_size):
        sl = slice(s, s + cfg.micro_batch_size)
        logprobs, mask, entropy = sequence_logprobs(model, batch.prompt_ids[sl], batch.completion_ids[sl], pad_id)
        mask = mask * keep[sl].unsqueeze(1).to(mask.device)
        # policy_loss normalises by this micro-batch's tokens; rescale so the sum over micro-batches
        # (and the mean over ranks) is the token mean over the whole batch
        share = float(mask.sum()) * w / max(1.0, total_tokens)
        loss = policy_loss(logprobs, advantages[sl].to(logprobs.device), mask) * share
        if not is_finite(loss):
            bad_loss, loss_sum = loss.detach(), float("nan")
            if not eng.skips_nonfinite_step:
                break  # never backpropagated; the step is skipped below
            loss = loss * float("nan")  # DeepSpeed: poison the gradient, its step discards the update
        eng.backward(loss, boundary=s + cfg.micro_batch_size >= n)
        loss_sum += float(loss.detach())
        ent_sum += float((entropy * mask).sum())
        ent_n += float(mask.sum())
    # DeepSpeed decides on the global gradient norm, the same on every rank (a local loss is not)
    _, grad_norm = guarded_step(eng, guard, step, None if eng.skips_nonfinite_step else bad_loss)
    if w > 1:
        loss_sum, ent_sum, ent_n = eng.all_reduce_sum(
            torch.tensor([loss_sum, ent_sum, ent_n], dtype=torch.float64, device=dev)).tolist()
        loss_sum /= w
    return {"loss": loss_sum, "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
            "entropy": ent_sum / max(1.0, ent_n), "trained_tokens": total_tokens}


def build_generator(cfg: GRPOConfig, model, tokenizer):
    """The rollout engine ``cfg.rollout_engine`` names, sampling from ``model``'s current weights.

    ``hf``: an :class:`~nemotron_cascade.generation.hf.HFGenerator` on ``model`` itself (it sees
    every update). ``vllm``: a :class:`~nemotron_cascade.generation.vllm_engine.VLLMGenerator`
    loaded from ``model`` and ``tokenizer`` saved to a temporary directory (``seed=cfg.seed`` and
    ``cfg.vllm`` as keyword arguments of ``from_pretrained``); it holds its own copy of the weights,
    which :func:`train_grpo` syncs after every optimiser step.
    """
    if cfg.rollout_engine == "hf":
        from nemotron_cascade.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, batch_size=cfg.rollout_batch_size)
    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    with tempfile.TemporaryDirectory(prefix="grpo-vllm-") as path:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return VLLMGenerator.from_pretrained(path, **{"seed": cfg.seed, **dict(cfg.vllm or {})})


def _make_engine(cfg: GRPOConfig, model, opt):
    """The training engine of ``cfg``; DeepSpeed's ``auto`` batch sizes are the loop's micro-batches
    (the loop accumulates them itself: ``gradient_accumulation_steps`` 1, see engines)."""
    if cfg.engine == "torch":
        return engines.make_engine("torch", model, opt, grad_clip=cfg.grad_clip)
    world = engines.launched_world_size()
    if cfg.prompts_per_step % world:
        raise ValueError(f"GRPO prompts_per_step {cfg.prompts_per_step} is not divisible by the world size {world}")
    micro = min(cfg.micro_batch_size, cfg.prompts_per_step // world * cfg.group_size)
    return engines.make_loop_engine(cfg.engine, model, opt, cfg.deepspeed, cfg.grad_clip, micro)


def _batch_stats(batch: RolloutBatch, engine) -> tuple[list[int], list[bool], list[int]]:
    """Completion lengths, finished flags and prompt lengths of the whole step's batch (every
    rank's share, gathered, under data parallelism)."""
    import torch

    if engine.world_size == 1:
        return [len(c) for c in batch.completion_ids], list(batch.finished), [len(p) for p in batch.prompt_ids]
    local = torch.tensor([[len(c), float(f), len(p)] for c, f, p in
                          zip(batch.completion_ids, batch.finished, batch.prompt_ids)], dtype=torch.float64)
    full = gather_shards(local, engine).tolist()
    return [int(a) for a, _, _ in full], [b > 0 for _, b, _ in full], [int(c) for _, _, c in full]


def train_grpo(model, tokenizer, rows: Sequence[Mapping], reward_fn: RewardFn, cfg: GRPOConfig, generator,
               render_prompt: Callable[..., str], on_metrics: MetricsCallback | None = None,
               resume_dir: str | None = None, fingerprint: str = "",
               diagnostics: Callable[[Sequence[str], Sequence[Mapping], Sequence[float]], dict] | None = None,
               keep_final_state: bool = False, reward_name: str | None = None) -> list[dict]:
    """Train ``model`` in place with GRPO (see :func:`_train_grpo`), with activation checkpointing
    in the training forward/backward when ``cfg.gradient_checkpointing`` (rollouts run in eval
    mode, with the KV cache, unaffected)."""
    with engines.gradient_checkpointing(model, cfg.gradient_checkpointing):
        return _train_grpo(model, tokenizer, rows, reward_fn, cfg, generator, render_prompt, on_metrics, resume_dir,
                           fingerprint, diagnostics, keep_final_state, reward_name)


def _train_grpo(
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
    the same module, or an engine that syncs them); ``None`` builds the one ``cfg.rollout_engine``
    names (:func:`build_generator`). With ``rollout_engine: vllm`` the generator must have
    ``sync_weights`` (a :class:`~nemotron_cascade.generation.vllm_engine.VLLMGenerator`): it gets
    the trainer's weights before the first rollout and after every optimiser step (the full state
    dict, gathered on every rank under ZeRO-3: ``state_dict_for_save``). ``render_prompt(row,
    thinking)`` gives the prompt text (``render_prompt(row, thinking, max_prompt_tokens,
    count_tokens)`` under a context schedule). ``reward_fn(responses, rows)`` scores the batch.
    ``diagnostics(responses, rows, rewards)`` adds metrics to each step's record (see
    :mod:`nemotron_cascade.rl.diagnostics`).

    A step whose rewards (``reward_name`` names the reward in the warning), loss or gradient norm
    contain NaN/inf makes no update; more than ``cfg.max_bad_steps`` in a row stop the run
    (:mod:`nemotron_cascade.training.faults`).

    ``cfg.engine: deepspeed`` (under torchrun, world size ``w``): every rank takes the same prompts
    from the pool and samples and scores its ``r``-th share of them (``prompts_per_step / w``); the
    rewards are gathered, so advantages, the shuffled control, the prompt filter and the logged
    metrics are those of the whole batch on every rank (``diagnostics`` see the rank's share), and
    the update is :func:`grpo_step`'s data-parallel loss. ``on_metrics`` runs on rank 0 only; at
    the end the model is a plain, full module on every rank.

    Mid-stage resume (``resume_dir``, ``fingerprint``): every ``checkpoint_every`` steps, the torch
    engine's state to ``resume_dir/state.pt``, DeepSpeed's through its sharded checkpoints (every
    rank, :func:`~nemotron_cascade.training.resume.save_sharded`), with the pool's position and
    filter state, the fault counters and the history. A generator that keeps state between calls
    (``state_dict``/``load_state_dict``, such as the tests' fixed rollouts; the HF and vLLM
    engines are seeded per step and have none) has it saved too, per rank.
    """
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    sharded = cfg.engine != "torch"  # DeepSpeed: its own checkpoints, once the engine exists
    pool = PromptPool(len(rows), cfg.seed, cfg.dynamic_filter, cfg.readmit_prob)
    guard = FaultGuard("GRPO", cfg.max_bad_steps)
    state = resume_lib.load(resume_dir, fingerprint, model, opt, sched) if resume_dir and not sharded else None
    if generator is None:
        generator = build_generator(cfg, model, tokenizer)  # before ZeRO-3 partitions the weights
    if cfg.rollout_engine == "vllm" and not hasattr(generator, "sync_weights"):
        raise TypeError(f"rollout_engine 'vllm' needs a generator with sync_weights (a VLLMGenerator), "
                        f"got {type(generator).__name__}")
    eng = _make_engine(cfg, model, opt)
    if resume_dir and sharded:
        state = resume_lib.load_sharded(resume_dir, fingerprint, eng, opt, sched)
    start, history = 0, []
    if state:
        start, history = state["step"], state["history"]
        pool.load_state_dict(state["extra"]["pool"])
        if "guard" in state["extra"]:
            guard.load_state_dict(state["extra"]["guard"])
        gen_state = state["rank_extra"] if sharded else state["extra"].get("generator")
        if gen_state is not None:
            generator.load_state_dict(gen_state)

    def save(step: int) -> None:
        extra = {"pool": pool.state_dict(), "guard": guard.state_dict()}
        gen_state = generator.state_dict() if hasattr(generator, "load_state_dict") else None
        if sharded:
            resume_lib.save_sharded(resume_dir, fingerprint, eng, opt, sched, step, history, extra, gen_state)
        else:
            resume_lib.save(resume_dir, fingerprint, model, opt, sched, step, history,
                            extra={**extra, "generator": gen_state})

    per = cfg.prompts_per_step // eng.world_size * cfg.group_size
    lo, hi = eng.rank * per, (eng.rank + 1) * per  # this rank's sequences of a step's batch

    def sync_weights():  # every rank: under ZeRO-3 the gather is a collective
        if cfg.rollout_engine == "vllm":
            generator.sync_weights(eng.state_dict_for_save().items())

    sync_weights()  # the engine starts from the trainer's weights (a resume, an engine built elsewhere)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    reward_name = reward_name or getattr(reward_fn, "__name__", None) or repr(reward_fn)
    bar = tqdm(range(start, cfg.max_steps), desc="grpo", initial=start, total=cfg.max_steps, leave=False,
               disable=not eng.is_rank0)
    for step in bar:
        t0 = time.perf_counter()
        idx = pool.take(cfg.prompts_per_step)
        batch = rollout(generator, tokenizer, [rows[i] for i in idx], cfg, step, render_prompt,
                        (eng.rank, eng.world_size))
        t_gen = time.perf_counter() - t0
        rewards, trained, adv = score(batch, reward_fn, cfg, step, eng)
        groups = trained.view(-1, cfg.group_size)
        zero_var = (groups.max(1).values == groups.min(1).values).tolist()
        for i, z in zip(idx, zero_var):
            pool.report(i, z)
        if guard.healthy(step + 1, f"from reward {reward_name!r}", reward=rewards):
            model.train()
            m = grpo_step(model, opt, batch, adv[lo:hi], cfg, pad_id, guard, step + 1, eng)
        else:  # a NaN/inf reward poisons its group's advantages: no update this step
            m = {"loss": float("nan"), "grad_norm": float("nan"), "entropy": float("nan"), "trained_tokens": 0}
        sched.step()
        model.eval()
        sync_weights()
        dt = time.perf_counter() - t0
        lengths, finished, prompt_lengths = _batch_stats(batch, eng)
        m.update({
            "reward": float(rewards.mean()), "accuracy": float((rewards >= 1.0).float().mean()),
            "response_length": sum(lengths) / len(lengths), "response_length_max": max(lengths),
            "truncation_rate": 1 - sum(finished) / len(finished),
            "zero_variance_groups": sum(zero_var) / len(zero_var), "lr": sched.get_last_lr()[0],
            "max_new_tokens": max_tokens_at(step, cfg.length_schedule), "epoch": pool.epoch,
            "prompt_length": sum(prompt_lengths) / len(prompt_lengths),
            "filtered_prompts": pool.filtered, "completion_tokens_per_s": sum(lengths) / dt,
            "steps_per_s": 1.0 / dt, "rollout_share": t_gen / dt,
        })
        if cfg.context_schedule:
            m["max_prompt_tokens"] = max_tokens_at(step, cfg.context_schedule)
        if diagnostics:
            m.update(diagnostics(batch.texts, batch.rows, rewards[lo:hi].tolist()))
        history.append({"step": step + 1, **m})
        bar.set_postfix(reward=f"{m['reward']:.2f}", acc=f"{m['accuracy']:.2f}")
        if on_metrics and eng.is_rank0:
            on_metrics(m, step + 1)
        if resume_dir and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.max_steps:
            save(step + 1)
    model.eval()
    if resume_dir and keep_final_state:  # the caller clears it once the checkpoint is safely saved
        if start < cfg.max_steps:
            save(cfg.max_steps)
    elif resume_dir and sharded:
        resume_lib.clear_sharded(resume_dir, eng)
    elif resume_dir:
        resume_lib.clear(resume_dir)
    eng.finish()
    return history
