"""Token log-probs and cross-entropy through the LM head in chunks of positions.

The LM head turns each position's final hidden state into ``V`` logits (151,936 for Qwen3). At the
paper's lengths (32K-token SFT blocks, 40K-token GRPO responses) the ``[B, L, V]`` fp32 logits of
one forward, and the log-softmax and gradient copies made from them, are tens of GB. Here:

1. the model's body runs once, through the causal LM's own forward (so a DeepSpeed engine or a DDP
   wrapper sees the call it expects), asked for its hidden states and for the logits of the last
   position only (``logits_to_keep=1``: ``[B, 1, V]``);
2. only the positions whose logits are used are kept (completion positions for GRPO, label
   positions for SFT): ``[N, H]`` rows of the final (normed) hidden states;
3. the head, the log-softmax and the target log-prob (and the entropy, or the cross-entropy) run
   over chunks of ``chunk_tokens`` rows. Each chunk is a non-reentrant
   :func:`torch.utils.checkpoint.checkpoint`: its ``[chunk, V]`` tensors are freed when the chunk
   is done and recomputed, one chunk at a time, in backward. The peak is about three
   ``[chunk, V]`` fp32 tensors (the recomputed log-softmax, its gradient, the logits' gradient)
   instead of three to four ``[B, L, V]`` (benchmarks/bench_token_memory.py). Under ZeRO-3 every
   rank makes as many head calls (:func:`chunk_count`).

References read: TRL's GRPO trainer takes the last hidden state from the unwrapped model's body
and hands it with the head's weight to Liger's fused loss; Liger's fused linear cross-entropy
computes the gradient inside the forward, chunk by chunk (no recomputation, but a scalar loss only
and direct access to the weight). A checkpoint per chunk costs one more head matmul in backward,
but it calls the head as a module, so ZeRO-3's parameter gathering, DDP's gradient hooks and
autocast apply as in the model's own forward, and per-token outputs (GRPO's log-probs, whose
gradient is not known in the forward) work.

Logit post-processing of the model is reproduced: Gemma-2/3's ``final_logit_softcapping``,
Cohere's ``logit_scale``, Granite's ``logits_scaling``. Qwen3 (the project's models) and Llama
have none. Every call compares the reproduced head with the model's own logits at the last
position and refuses a model whose head it does not reproduce.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def causal_lm(model):
    """The causal LM inside ``model``: a DeepSpeed engine's or DDP's ``.module``, a compiled
    module's ``._orig_mod``; ``model`` itself when it wraps nothing."""
    inner = model
    while True:
        nested = getattr(inner, "_orig_mod", None)
        if nested is None and isinstance(getattr(inner, "module", None), torch.nn.Module):
            nested = inner.module
        if nested is None:
            return inner
        inner = nested


def head_logits(lm, hidden):
    """fp32 logits ``[n, V]`` of hidden states ``[n, H]``: ``lm``'s output embeddings followed by
    its logit post-processing, in the model's dtype, then cast (as ``model(...).logits.float()``)."""
    logits = lm.get_output_embeddings()(hidden)
    scale = getattr(lm, "logit_scale", None)  # Cohere: logits * logit_scale
    if isinstance(scale, (int, float)):
        logits = logits * scale
    divisor = getattr(lm.config, "logits_scaling", None)  # Granite: logits / logits_scaling
    if divisor is not None:
        logits = logits / divisor
    cap = getattr(lm.config, "final_logit_softcapping", None)  # Gemma-2/3: tanh soft-capping
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def final_hidden(model, **inputs):
    """The final hidden states ``[B, L, H]`` (after the last norm) of one forward of ``model``,
    its head checked (:func:`check_head`) against the model's own logits at the last position."""
    out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1]
    check_head(causal_lm(model), hidden, out.logits)
    return hidden


def check_head(lm, hidden, last_logits) -> None:
    """Refuse a model whose logits :func:`head_logits` does not reproduce (an unknown scaling of the
    head), checked at the last position of ``hidden`` against the model's own ``last_logits``."""
    with torch.no_grad():
        mine = head_logits(lm, hidden[:, -1:])
        theirs = last_logits.float()
        if not torch.allclose(mine, theirs, rtol=1e-3, atol=1e-3):
            diff = float((mine - theirs).abs().max())
            raise ValueError(f"{type(lm).__name__}: the chunked LM head does not reproduce the model's own logits "
                             f"(max |diff| {diff:.3g} at the last position): its head post-processes the logits in a "
                             f"way token_logprobs.head_logits does not know; set logits_chunk_tokens to null")


def _logprob_entropy(lm, hidden, targets):
    """Log-prob of ``targets`` ``[c]`` and the entropy (no gradient) of one chunk of rows ``[c, H]``."""
    logp = torch.log_softmax(head_logits(lm, hidden), dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


def _cross_entropy_sum(lm, hidden, targets):
    """Summed cross-entropy of one chunk of rows ``[c, H]`` against ``targets`` ``[c]``."""
    return F.cross_entropy(head_logits(lm, hidden), targets, reduction="sum")


def chunk_count(lm, rows: int, chunk_tokens: int, device) -> int:
    """How many chunks cover ``rows`` rows: at least one; under DeepSpeed ZeRO-3 (the head's weight
    is partitioned: it has a ``ds_id``) the largest count of any rank, because every call of the
    head gathers its weight, a collective that every rank must make as often (a rank with fewer
    label or completion tokens runs empty chunks)."""
    if chunk_tokens < 1:
        raise ValueError(f"logits_chunk_tokens must be ≥ 1, got {chunk_tokens}")
    count = max(1, -(-rows // chunk_tokens))
    dist = torch.distributed
    if hasattr(lm.get_output_embeddings().weight, "ds_id") and dist.is_available() and dist.is_initialized():
        most = torch.tensor(count, device=device)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        count = int(most)
    return count


def over_chunks(lm, fn, rows, targets, chunk_tokens: int) -> list:
    """``fn(lm, rows[s:s+c], targets[s:s+c])`` for each of the :func:`chunk_count` chunks of
    ``c = chunk_tokens`` rows (empty ones past the end), each recomputed in backward. An empty chunk
    keeps a batch without rows in the graph. One chunk for every row is not recomputed: it keeps for
    backward what the unchunked path keeps, over the used positions only (a ``chunk_tokens`` above
    any batch's row count: the head without recomputation, only where its logits are used)."""
    outs = []
    chunks = chunk_count(lm, rows.shape[0], chunk_tokens, rows.device)
    for k in range(chunks):
        args = (rows[k * chunk_tokens:(k + 1) * chunk_tokens], targets[k * chunk_tokens:(k + 1) * chunk_tokens])
        if torch.is_grad_enabled() and chunks > 1:  # the head has no randomness: no RNG state to keep
            outs.append(checkpoint(partial(fn, lm), *args, use_reentrant=False, preserve_rng_state=False))
        else:
            outs.append(fn(lm, *args))
    return outs


def completion_logprobs(model, ids, attn, index, mask, targets, chunk_tokens: int):
    """``(logprobs [B, T], entropy [B, T])`` of the completion tokens, chunked.

    ``index[b, t]`` is the position whose logits predict ``targets[b, t]``; only the rows where
    ``mask`` is 1 go through the head (0 elsewhere, where the unchunked path holds the unused
    log-prob of position 0). The entropy carries no gradient.
    """
    lm, hidden = causal_lm(model), final_hidden(model, input_ids=ids, attention_mask=attn)
    keep = mask.bool()
    b_idx, _ = keep.nonzero(as_tuple=True)
    return logprobs_at(lm, hidden[b_idx, index[keep]], targets, keep, chunk_tokens)


def logprobs_at(lm, rows, targets, keep, chunk_tokens: int):
    """``(logprobs [B, T], entropy [B, T])`` from the final hidden states ``rows [N, H]`` of the
    positions where ``keep [B, T]`` is true (in ``keep.nonzero()`` order) predicting ``targets[keep]``,
    the head run over :func:`over_chunks`; 0 where ``keep`` is false."""
    where = keep.nonzero(as_tuple=True)
    outs = over_chunks(lm, _logprob_entropy, rows, targets[keep], chunk_tokens)
    logp, ent = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return logp.new_zeros(keep.shape).index_put(where, logp), ent.new_zeros(keep.shape).index_put(where, ent)


def token_cross_entropy(model, input_ids, labels, position_ids, chunk_tokens: int, reduction: str = "mean"):
    """Next-token cross-entropy over the positions whose label is not -100 (``mean`` or ``sum``),
    chunked; the call and the selection of ``sft.token_loss`` (labels shifted by one)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    lm, hidden = causal_lm(model), final_hidden(model, input_ids=input_ids, position_ids=position_ids)
    shift_labels = labels[:, 1:]
    keep = shift_labels != -100
    total = sum(over_chunks(lm, _cross_entropy_sum, hidden[:, :-1][keep], shift_labels[keep], chunk_tokens))
    return total if reduction == "sum" else total / keep.sum()
