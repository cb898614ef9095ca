"""The GRPO variant of Nemotron-Cascade: strict on-policy, no KL, group-normalised, token-level.

For a prompt q, G responses o_1..o_G are sampled from the current policy and scored r_1..r_G.

    Â_i = (r_i − mean(r)) / (std(r) + ε)        the same for every token of o_i
    L   = −(1 / Σ_i |o_i|) Σ_i Σ_t Â_i · log π_θ(o_i,t | q, o_i,<t)

over the whole batch (token-level averaging, as DAPO/the paper, not per-sequence). Strict
on-policy means one optimiser step per rollout batch, so the importance ratio π_θ/π_old is exactly
1 at the step: no clipping and no KL term apply, and the objective reduces to REINFORCE with
group-normalised rewards. A group whose rewards are all equal carries no signal: its advantages
are exactly 0 (not 0/ε noise).

``std`` is the population standard deviation (divide by G), as in the paper's formula.
"""

from __future__ import annotations

import torch

EPS = 1e-6


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = EPS) -> torch.Tensor:
    """Group-normalised advantages.

    rewards: [N*G], ordered group by group (the G samples of prompt 0, then prompt 1, ...)
    returns: [N*G] with (r − mean_group) / (std_group + eps); exactly 0 for zero-variance groups.
    """
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)  # [N, G]
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, unbiased=False, keepdim=True)
    adv = (r - mean) / (std + eps)
    adv = torch.where(std > 0, adv, torch.zeros_like(adv))
    return adv.view(-1)


def policy_loss(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level policy-gradient loss over the whole batch.

    logprobs:   [B, T] log π_θ of the sampled tokens
    advantages: [B]    one advantage per response, broadcast over its tokens
    mask:       [B, T] 1 for response tokens, 0 for prompt and padding
    returns:    scalar −Σ_{b,t} A_b · logp_{b,t} · mask_{b,t} / Σ mask
    """
    if logprobs.shape != mask.shape or advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"shapes do not match: logprobs {tuple(logprobs.shape)}, advantages "
                         f"{tuple(advantages.shape)}, mask {tuple(mask.shape)}")
    mask = mask.to(logprobs.dtype)
    tokens = mask.sum().clamp(min=1.0)
    return -(advantages.unsqueeze(1).to(logprobs.dtype) * logprobs * mask).sum() / tokens
