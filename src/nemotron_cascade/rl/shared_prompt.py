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

import functools
import inspect

import torch

from nemotron_cascade.training import token_logprobs


def _padded(rows: list[list[int]], pad_id: int, left: bool):
    """``(ids, mask)`` ``[n, max(1, L)]`` of ``rows`` padded to the longest, on the left or the right."""
    length = max(1, max(map(len, rows)))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(length - len(row), length) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


@functools.cache
def _cache_name(model_class) -> str:
    """What the forward and its output call a cache: ``cache`` from transformers 5.24 (which still
    takes ``past_key_values``, with a deprecation warning), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def shared_prompt_logprobs(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                           chunk_tokens: int | None = None):
    """``(logprobs [B, T], mask [B, T], entropy [B, T])`` as ``sequence_logprobs`` returns them, each
    distinct prompt through the model once (see the module docstring). ``chunk_tokens`` None: the
    head over every completion position in one chunk."""
    dev = next(model.parameters()).device
    distinct: dict[tuple, int] = {}
    group = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids], device=dev)
    p_ids, p_mask = (t.to(dev) for t in _padded([list(p) for p in distinct], pad_id, left=True))
    c_ids, c_mask = (t.to(dev) for t in _padded(completion_ids, pad_id, left=False))
    lm = token_logprobs.causal_lm(model)
    cache_name = _cache_name(type(lm))
    out = model(input_ids=p_ids, attention_mask=p_mask, position_ids=(p_mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True, output_hidden_states=True, logits_to_keep=1)
    token_logprobs.check_head(lm, out.hidden_states[-1], out.logits)
    cache = out[cache_name]
    cache.batch_select_indices(group)
    starts = torch.tensor([len(p) for p in prompt_ids], device=dev)[:, None]
    cont = model(input_ids=c_ids, attention_mask=torch.cat([p_mask[group], c_mask], 1),
                 position_ids=starts + torch.arange(c_ids.shape[1], device=dev), use_cache=True,
                 output_hidden_states=True, logits_to_keep=1, **{cache_name: cache})
    # the predictor of completion token k: the prompt's last state for k = 0, completion state k-1 after
    hidden = torch.cat([out.hidden_states[-1][group, -1:], cont.hidden_states[-1][:, :-1]], 1)
    keep = c_mask.bool()
    rows = hidden[keep]
    logprobs, entropy = token_logprobs.logprobs_at(lm, rows, c_ids, keep, chunk_tokens or max(1, rows.shape[0]))
    return logprobs, c_mask.float(), entropy
