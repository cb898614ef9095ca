"""The GRPO update: rewards to group advantages, and one token-level optimiser step on a rollout batch."""

from __future__ import annotations

import logging

from nemotron_cascade.rewards.registry import RewardFn
from nemotron_cascade.rl.config import GRPOConfig
from nemotron_cascade.rl.grpo import group_advantages, policy_loss
from nemotron_cascade.rl.rollout import RolloutBatch
from nemotron_cascade.training import engines
from nemotron_cascade.training.faults import FaultGuard, guarded_step, is_finite

log = logging.getLogger(__name__)


def sequence_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                      chunk_tokens: int | None = None, share_prompt: bool = False):
    """Per-token log-probs of the completions under ``model`` (with grad), their mask and entropy.

    Sequences are ``prompt + completion``, right-padded. Returns ``(logprobs [B,T], mask [B,T],
    entropy [B,T])`` aligned to completion positions (``T`` = longest completion). With
    ``chunk_tokens`` (``GRPOConfig.logits_chunk_tokens``) only the completion positions go through
    the LM head, ``chunk_tokens`` at a time, each chunk recomputed in backward
    (:func:`~nemotron_cascade.training.token_logprobs.completion_logprobs`: the same values, no
    ``[B, L, V]`` logits; 0 at masked positions); ``None`` runs the whole head over every position.
    ``share_prompt``: each distinct prompt through the model once for its whole group
    (:func:`~nemotron_cascade.rl.shared_prompt.shared_prompt_logprobs`; single-process torch only).
    """
    import torch

    if share_prompt:
        from nemotron_cascade.rl.shared_prompt import shared_prompt_logprobs

        return shared_prompt_logprobs(model, prompt_ids, completion_ids, pad_id, chunk_tokens)

    seqs = [p + c for p, c in zip(prompt_ids, completion_ids)]
    L, T = max(map(len, seqs)), max(1, max(map(len, completion_ids)))
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), L), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)], attn[b, :len(s)] = torch.tensor(s), 1
    dev = next(model.parameters()).device  # tensors follow the model (CPU here, a GPU at scale)
    # the token at position j is predicted by logits at j-1: completion token k of sample b sits at
    # len(prompt_b) + k, predicted from len(prompt_b) + k - 1
    index = torch.zeros((len(seqs), T), dtype=torch.long)
    mask = torch.zeros((len(seqs), T))
    targets = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        n = len(c)
        index[b, :n] = torch.arange(len(p) - 1, len(p) - 1 + n)
        targets[b, :n], mask[b, :n] = torch.tensor(c, dtype=torch.long), 1.0
    ids, attn, index, mask, targets = (t.to(dev) for t in (ids, attn, index, mask, targets))
    if chunk_tokens is not None:
        from nemotron_cascade.training.token_logprobs import completion_logprobs

        logprobs, entropy = completion_logprobs(model, ids, attn, index, mask, targets, chunk_tokens)
        return logprobs, mask, entropy
    logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits.float()
    picked = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.size(-1)))  # [B,T,V]
    logp_all = torch.log_softmax(picked, dim=-1)
    logprobs = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).detach()
    return logprobs, mask, entropy


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
    w, dev = eng.world_size, next(eng.forward_module.parameters()).device
    keep = torch.tensor([f or not cfg.overlong_filter for f in batch.finished], dtype=torch.float32)
    total_tokens = sum(len(c) * k for c, k in zip(batch.completion_ids, keep.tolist()))
    if w > 1:  # N: the unmasked tokens of every rank's share
        total_tokens = float(eng.all_reduce_sum(torch.tensor(float(total_tokens), dtype=torch.float64, device=dev)))
    if total_tokens == 0:
        log.warning("every response of this batch was truncated and overlong_filter masks them all: "
                    "no gradient this step (raise the length_schedule or turn overlong_filter off)")
    eng.zero_grad()
    loss_sum, ent_sum, ent_n, bad_loss = _accumulate(eng, batch, advantages, keep, total_tokens, cfg, pad_id)
    # DeepSpeed decides on the global gradient norm, the same on every rank (a local loss is not)
    _, grad_norm = guarded_step(eng, guard, step, None if eng.skips_nonfinite_step else bad_loss)
    if w > 1:
        loss_sum, ent_sum, ent_n = eng.all_reduce_sum(
            torch.tensor([loss_sum, ent_sum, ent_n], dtype=torch.float64, device=dev)).tolist()
        loss_sum /= w
    return {"loss": loss_sum, "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
            "entropy": ent_sum / max(1.0, ent_n), "trained_tokens": total_tokens}


def _accumulate(eng, batch: RolloutBatch, advantages, keep, total_tokens: float, cfg: GRPOConfig, pad_id: int):
    """Backpropagate the batch micro-batch by micro-batch; ``(loss, entropy sum, token count, first
    non-finite loss or None)`` of this rank's share."""
    model, w = eng.forward_module, eng.world_size
    loss_sum, ent_sum, ent_n, bad_loss = 0.0, 0.0, 0.0, None
    n = len(batch.texts)
    for s in range(0, n, cfg.micro_batch_size):
        sl = slice(s, s + cfg.micro_batch_size)
        # the chunk size goes as a keyword only when set: the default call stays the 4-argument one
        # (which tests/ds_parity.py's fault injection wraps)
        options = {} if cfg.logits_chunk_tokens is None else {"chunk_tokens": cfg.logits_chunk_tokens}
        if cfg.share_prompt_forward:
            options["share_prompt"] = True
        logprobs, mask, entropy = sequence_logprobs(model, batch.prompt_ids[sl], batch.completion_ids[sl], pad_id,
                                                    **options)
        mask = mask * keep[sl].unsqueeze(1).to(mask.device)
        # policy_loss normalises by this micro-batch's tokens; rescale so the sum over micro-batches
        # (and the mean over ranks) is the token mean over the whole batch
        share = float(mask.sum()) * w / max(1.0, total_tokens)
        loss = policy_loss(logprobs, advantages[sl].to(logprobs.device), mask) * share
        if not is_finite(loss):
            bad_loss, loss_sum = loss.detach(), float("nan")
            if not eng.skips_nonfinite_step:
                break  # never backpropagated; the step is skipped
            loss = loss * float("nan")  # DeepSpeed: poison the gradient, its step discards the update
        eng.backward(loss, boundary=s + cfg.micro_batch_size >= n)
        loss_sum += float(loss.detach())
        ent_sum += float((entropy * mask).sum())
        ent_n += float(mask.sum())
    return loss_sum, ent_sum, ent_n, bad_loss


def batch_stats(batch: RolloutBatch, engine) -> tuple[list[int], list[bool], list[int]]:
    """Completion lengths, finished flags and prompt lengths of the whole step's batch (every
    rank's share, gathered, under data parallelism)."""
    import torch

    if engine.world_size == 1:
        return [len(c) for c in batch.completion_ids], list(batch.finished), [len(p) for p in batch.prompt_ids]
    local = torch.tensor([[len(c), float(f), len(p)] for c, f, p in
                          zip(batch.completion_ids, batch.finished, batch.prompt_ids)], dtype=torch.float64)
    full = gather_shards(local, engine).tolist()
    return [int(a) for a, _, _ in full], [b > 0 for _, b, _ in full], [int(c) for _, _, c in full]
