"""GRPO log-probs with one forward of each distinct prompt of a micro-batch, shared by its group.

A GRPO group is ``group_size`` completions of one prompt, and prompts are a third or more of each
sequence; the plain update (:func:`~nemotron_cascade.rl.update.sequence_logprobs`) runs every
prompt ``group_size`` times through the model, forward and backward. Here:

1. the distinct prompts run once, left-padded (as ``generate`` pads), with the cache on: their keys
   and values, and the final hidden state of each prompt's last token (which predicts the first
   completion token);
2. the cache is indexed out to one row per sequence (``Cache.batch_select_indices``: an indexing,
   so the gradient of every completion that attends to a prompt flows back into its one forward);
3. the completions run as a continuation over that cache (right-padded; positions continue each
   prompt's), and their final hidden states predict the remaining completion tokens;
4. the LM head and log-softmax run over completion positions only
   (:func:`~nemotron_cascade.training.token_logprobs.over_chunks`).

The values are the plain update's up to float rounding (tests: log-probs, entropy and gradients
within 1e-5). The model is called twice per micro-batch, so this runs on the single-process torch
engine only (``GRPOConfig`` refuses it with DeepSpeed: ZeRO-3 gathers and DDP's hooks expect one
forward per backward).
"""

from __future__ import annotations

import inspect

import torch

from nemotron_cascade.training import token_logprobs


def _left_padded(rows: list[list[int]], pad_id: int):
    """``(ids, mask)`` ``[n, L]`` of ``rows`` left-padded to the longest."""
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, length - len(row):], mask[i, length - len(row):] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


def _right_padded(rows: list[list[int]], pad_id: int):
    """``(ids, mask)`` ``[n, max(1, L)]`` of ``rows`` right-padded to the longest."""
    length = max(1, max(map(len, rows)))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


def _cache_keyword(lm) -> str:
    """The forward's name for a cache: ``cache`` from transformers 5.24, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def shared_prompt_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                           chunk_tokens: int | None = None):
    """``(logprobs [B, T], mask [B, T], entropy [B, T])`` as ``sequence_logprobs`` returns them, each
    distinct prompt through the model once (see the module docstring). ``chunk_tokens`` None: the
    head over every completion position in one chunk."""
    dev = next(model.parameters()).device
    distinct: dict[tuple, int] = {}
    group = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids], device=dev)
    p_ids, p_mask = (t.to(dev) for t in _left_padded([list(p) for p in distinct], pad_id))
    c_ids, c_mask = (t.to(dev) for t in _right_padded(completion_ids, pad_id))
    lm = token_logprobs.causal_lm(model)
    out = model(input_ids=p_ids, attention_mask=p_mask, position_ids=(p_mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True, output_hidden_states=True, logits_to_keep=1)
    token_logprobs.check_head(lm, out.hidden_states[-1], out.logits)
    cache = out.past_key_values
    cache.batch_select_indices(group)
    starts = torch.tensor([len(p) for p in prompt_ids], device=dev)[:, None]
    cont = model(input_ids=c_ids, attention_mask=torch.cat([p_mask[group], c_mask], 1),
                 position_ids=starts + torch.arange(c_ids.shape[1], device=dev), use_cache=True,
                 output_hidden_states=True, logits_to_keep=1, **{_cache_keyword(lm): cache})
    # the predictor of completion token k: the prompt's last state for k = 0, completion state k-1 after
    hidden = torch.cat([out.hidden_states[-1][group, -1:], cont.hidden_states[-1][:, :-1]], 1)
    keep = c_mask.bool()
    b_idx, t_idx = keep.nonzero(as_tuple=True)
    rows = hidden[b_idx, t_idx]
    outs = token_logprobs.over_chunks(lm, token_logprobs._logprob_entropy, rows, c_ids[keep],
                                      chunk_tokens or max(1, rows.shape[0]))
    logp, ent = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    mask = c_mask.float()
    return (logp.new_zeros(mask.shape).index_put((b_idx, t_idx), logp), mask,
            ent.new_zeros(mask.shape).index_put((b_idx, t_idx), ent))
