"""Embedded rollout engine: a plain-torch decoder of the tiny Qwen3 policy, for CPU rollouts.

HF ``generate`` spends much of a token step of the tiny model on framework overhead (mask building,
cache objects, module dispatch), not arithmetic. :class:`EmbeddedGenerator` runs the same
Qwen3ForCausalLM (grouped-query attention with q/k RMSNorm, RoPE, SwiGLU, tied embeddings) as a
handful of tensor operations per layer:

- **live weights**: every ``generate`` call reads the model's current parameters (no second copy to
  sync after an optimiser step); the Q/K/V and gate/up matrices are concatenated once per call
  (4 layers: ~0.3 ms), everything else is the parameter tensor itself;
- **one prefill per distinct prompt** of a batch (a GRPO group repeats its prompt ``n`` times), in
  chunks of ``PREFILL_TOKENS``, only real tokens through the projections; its keys and values are
  copied into a preallocated cache of ``prompt + max_new_tokens`` columns;
- **no attention mask is built per step**: rows are left-padded as HF pads them, and a per-row
  additive key bias (``-inf`` on the row's padding columns, made once per batch from the start
  offsets) is added to the scores of the new token over the filled span of the cache; the query
  heads that share a key/value head form one ``[heads / kv_heads, span]`` product (no ``repeat_kv``);
- **finished rows leave the batch** once a quarter of it has stopped (their cache rows compacted).

Conventions are :class:`~nemotron_cascade.generation.hf.HFGenerator`'s: prompts sorted by length
and batched ``batch_size`` at a time, left padding, generation stops at
:func:`nemotron_cascade.models.stop_token_ids` (the stop token kept in ``token_ids``, dropped from
``text``), ``finished``, the raw log-softmax of the top-``k`` and sampled token with
``SamplingParams.logprobs``, greedy at temperature 0, else temperature and top-p sampling (HF's
top-p rule) from a ``torch.Generator`` seeded with ``SamplingParams.seed``. Greedy tokens agree
with HF ``generate`` up to float rounding (a differing token is a near-tie of the top two logits).
"""

from __future__ import annotations

from dataclasses import dataclass

from nemotron_cascade.generation.base import Completion, SamplingParams

#: A batch is compacted (finished rows dropped) once this share of its rows has stopped.
DROP_SHARE = 0.25
#: Prompt tokens (padding included) prefilled at a time: small chunks keep the activations in cache.
PREFILL_TOKENS = 1024


@dataclass
class Weights:
    """The tensors one ``generate`` call decodes with: the model's parameters (fused per call)."""

    embed: object                   # [V, D], also the LM head (tied embeddings)
    norm: object                    # final RMSNorm weight [D]
    layers: list[dict]              # per layer: ln1, qkv, qk_norm [H+KV, d], o, ln2, gate_up, down
    inv_freq: object                # RoPE inverse frequencies [d/2]
    heads: int
    kv_heads: int
    head_dim: int
    eps: float


def read_weights(model) -> Weights:
    """The live parameters of a ``Qwen3ForCausalLM`` as :class:`Weights`; an error names what this
    decoder does not implement (biases, another activation, scaled RoPE, sliding windows, untied
    embeddings)."""
    import torch

    cfg = model.config
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    unsupported = {
        "attention_bias": bool(getattr(cfg, "attention_bias", False)),
        "hidden_act": cfg.hidden_act != "silu",
        "rope_type": rope.get("rope_type", "default") != "default",
        "use_sliding_window": bool(getattr(cfg, "use_sliding_window", False)),
        "tie_word_embeddings": model.lm_head.weight is not model.model.embed_tokens.weight,
    }
    if getattr(cfg, "model_type", None) != "qwen3" or any(unsupported.values()):
        bad = [k for k, v in unsupported.items() if v] or [f"model_type={getattr(cfg, 'model_type', None)!r}"]
        raise ValueError(f"the embedded engine decodes a plain tied-embedding Qwen3 only; this model has: {bad}")
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    layers = []
    for layer in model.model.layers:
        att, mlp = layer.self_attn, layer.mlp
        layers.append({
            "ln1": layer.input_layernorm.weight, "ln2": layer.post_attention_layernorm.weight,
            "qkv": torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]),
            "qk_norm": torch.cat([att.q_norm.weight.expand(heads, head_dim),
                                  att.k_norm.weight.expand(kv_heads, head_dim)]),
            "o": att.o_proj.weight, "gate_up": torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
            "down": mlp.down_proj.weight,
        })
    return Weights(embed=model.model.embed_tokens.weight, norm=model.model.norm.weight, layers=layers,
                   inv_freq=model.model.rotary_emb.inv_freq, heads=heads, kv_heads=kv_heads,
                   head_dim=head_dim, eps=cfg.rms_norm_eps)


def rms_norm(x, weight, eps: float):
    """Qwen3's RMSNorm over the last dimension, HF's arithmetic for float32 in fewer operations;
    ``weight`` may also be ``[heads, d]`` for the q/k norms of every head at once."""
    if x.element_size() < 4:
        h = x.float()  # half precision: statistics in float32, cast back before the weight, as HF
        return weight * (h * (h * h).mean(-1, keepdim=True).add_(eps).rsqrt_()).to(x.dtype)
    return (x * (x * x).mean(-1, keepdim=True).add_(eps).rsqrt_()).mul_(weight)


def rope_tables(w: Weights, positions, dtype):
    """``(cos, sin)`` for ``positions`` (any shape), ``sin`` signed ``[-s, s]`` so that RoPE is
    ``x * cos + x.roll(d/2) * sin`` — HF's ``rotate_half`` with the minus sign moved to the table."""
    import torch

    freqs = positions[..., None].float() * w.inv_freq.float()
    emb = torch.cat((freqs, freqs), dim=-1)
    half = w.head_dim // 2
    sin = emb.sin()
    sin[..., :half].neg_()
    return emb.cos().to(dtype), sin.to(dtype)


def rope(x, cos, sin, half: int):
    """Rotary embedding of ``x [..., d]`` (tables from :func:`rope_tables`, broadcast over heads)."""
    return x * cos + x.roll(half, -1) * sin


@dataclass
class Batch:
    """The decoding state of one left-padded batch; rows are dropped from every tensor together."""

    rows: object                     # [b] index of each live row in the original batch
    keys: list                       # per layer [b, KV, d, S]: the preallocated cache, keys transposed
    values: list                     # per layer [b, KV, S, d]
    bias: object                     # [b, 1, 1, S]: 0 on a row's tokens, -inf on its padding
    cos: object                      # [b, new, d] RoPE tables of the decoded positions
    sin: object
    alive: object                    # [b] bool: not stopped yet

    def keep(self, index) -> None:
        """Keep only the rows at ``index`` (a 1-d tensor of positions in the current batch)."""
        self.rows, self.alive = self.rows[index], self.alive[index]
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.bias, self.cos, self.sin = self.bias[index], self.cos[index], self.sin[index]


def prefill(w: Weights, ids, mask):
    """Run the distinct left-padded prompts ``ids [u, L]`` (``mask`` 1 on tokens) through the model.

    Only the real tokens go through the projections and the MLP (packed, ``[tokens, D]``); attention
    runs on the padded layout, a padding query attending to itself only (finite, never read).
    Returns the logits at each row's last token ``[u, V]`` and every layer's keys and values
    ``[u, KV, L, d]`` (zero on padding).
    """
    import torch
    import torch.nn.functional as F

    u, length = ids.shape
    h, kv, d = w.heads, w.kv_heads, w.head_dim
    real = mask.bool()
    counts = mask.sum(-1)
    x = F.embedding(ids[real], w.embed)
    cos, sin = rope_tables(w, (mask.cumsum(-1) - 1)[real], x.dtype)
    cos, sin = cos[:, None], sin[:, None]
    eye = torch.eye(length, dtype=torch.bool, device=ids.device)
    allowed = torch.ones_like(eye).tril() & (real[:, None, None, :] | eye)
    keys, values = [], []
    for lw in w.layers:
        qkv = F.linear(rms_norm(x, lw["ln1"], w.eps), lw["qkv"])
        qk = rope(rms_norm(qkv[:, :(h + kv) * d].view(-1, h + kv, d), lw["qk_norm"], w.eps), cos, sin, d // 2)
        padded = x.new_zeros(u, length, h + 2 * kv, d)
        padded[real] = torch.cat([qk, qkv[:, (h + kv) * d:].view(-1, kv, d)], 1)
        padded = padded.transpose(1, 2)
        k, v = padded[:, h:h + kv], padded[:, h + kv:]
        keys.append(k)
        values.append(v)
        att = F.scaled_dot_product_attention(padded[:, :h], k.repeat_interleave(h // kv, 1),
                                             v.repeat_interleave(h // kv, 1), attn_mask=allowed)
        x.add_(F.linear(att.transpose(1, 2)[real].reshape(-1, h * d), lw["o"]))
        x.add_(mlp(rms_norm(x, lw["ln2"], w.eps), lw))
    last = rms_norm(x[counts.cumsum(0) - 1], w.norm, w.eps)
    return F.linear(last, w.embed), keys, values


def mlp(x, lw):
    """SwiGLU over the fused gate/up matrix."""
    import torch.nn.functional as F

    gate, up = F.linear(x, lw["gate_up"]).chunk(2, -1)
    return F.linear(F.silu(gate, inplace=True).mul_(up), lw["down"])


def decode_step(w: Weights, state: Batch, tokens, col: int, step: int):
    """Logits ``[b, V]`` after feeding ``tokens [b]`` at cache column ``col`` (decode step ``step``):
    per layer one product for Q/K/V, one for the scores of each key/value head's query group
    over the filled span of the cache (plus the padding bias), one for the values."""
    import torch
    import torch.nn.functional as F

    b = tokens.shape[0]
    h, kv, d = w.heads, w.kv_heads, w.head_dim
    cos, sin = state.cos.narrow(1, step, 1), state.sin.narrow(1, step, 1)
    bias = state.bias.narrow(-1, 0, col + 1)
    scale = d ** -0.5
    x = F.embedding(tokens, w.embed)
    for lw, keys, values in zip(w.layers, state.keys, state.values):
        qkv = F.linear(rms_norm(x, lw["ln1"], w.eps), lw["qkv"])
        qk = rope(rms_norm(qkv.narrow(1, 0, (h + kv) * d).view(b, h + kv, d), lw["qk_norm"], w.eps), cos, sin,
                  d // 2)
        keys.select(-1, col).copy_(qk.narrow(1, h, kv))
        values.select(2, col).copy_(qkv.narrow(1, (h + kv) * d, kv * d).view(b, kv, d))
        scores = torch.matmul(qk.narrow(1, 0, h).view(b, kv, h // kv, d), keys.narrow(-1, 0, col + 1))
        probs = torch.softmax(scores.mul_(scale).add_(bias), -1)
        att = torch.matmul(probs, values.narrow(2, 0, col + 1)).view(b, h * d)
        x.add_(F.linear(att, lw["o"]))
        x.add_(mlp(rms_norm(x, lw["ln2"], w.eps), lw))
    return F.linear(rms_norm(x, w.norm, w.eps), w.embed)


def sample(logits, params: SamplingParams, generator):
    """The next token of every row: argmax at temperature 0, else a draw from the tempered
    distribution cut to its top-``p`` mass by HF's rule (``TopPLogitsWarper``, one token kept)."""
    import torch

    if params.temperature <= 0:
        return logits.argmax(-1)
    scores = logits.float()
    if params.temperature != 1.0:  # as HF: no temperature warper at 1
        scores = scores / params.temperature
    if params.top_p < 1.0:
        ordered, index = torch.sort(scores, descending=False)
        drop = ordered.softmax(-1).cumsum(-1) <= (1 - params.top_p)
        drop[..., -1:] = False
        scores = scores.masked_fill(drop.scatter(1, index, drop), float("-inf"))
    # inverse CDF with one uniform per row (multinomial draws an exponential per vocabulary entry);
    # u in (0, total], so the first cumulative mass >= u is a token of positive probability
    mass = scores.softmax(-1).cumsum(-1)
    u = mass[:, -1:] * (1 - torch.rand(mass.shape[0], 1, generator=generator, device=mass.device))
    return torch.searchsorted(mass, u).squeeze(1)


class LogprobRecord:
    """Per original row and step: the top-``k`` ids and values of the raw log-softmax and the value
    of the sampled token (``SamplingParams.logprobs``' convention)."""

    def __init__(self, rows: int, steps: int, k: int, vocab: int, device):
        import torch

        self.k = min(k, vocab)
        self.values = torch.zeros(rows, steps, self.k, device=device)
        self.ids = torch.zeros(rows, steps, self.k, dtype=torch.long, device=device)
        self.chosen = torch.zeros(rows, steps, device=device)

    def record(self, step: int, rows, logits, tokens) -> None:
        """Store step ``step`` of the live ``rows`` (their ``logits`` and sampled ``tokens``)."""
        import torch

        logp = torch.log_softmax(logits.float(), -1)
        top = logp.topk(self.k, -1)
        self.values[:, step].index_copy_(0, rows, top.values)
        self.ids[:, step].index_copy_(0, rows, top.indices)
        self.chosen[:, step].index_copy_(0, rows, logp.gather(-1, tokens[:, None]).squeeze(1))

    def entries(self, tokens) -> list[list[dict[int, float]]]:
        """One ``{token_id: log_prob}`` per row and step of ``tokens [rows, steps]`` (a list)."""
        from nemotron_cascade.generation.base import logprob_entries

        return logprob_entries(tokens, self.ids.tolist(), self.values.tolist(), self.chosen.tolist())


def start_batch(w: Weights, ids, mask, new_tokens: int):
    """Prefill the distinct prompts of ``ids [B, L]`` (``PREFILL_TOKENS`` at a time) and lay out the
    batch's cache, rows grouped by prompt: ``(logits [B, V], Batch)`` ready for the first token."""
    import torch

    rows, length = ids.shape
    size, dev = length + new_tokens, ids.device
    distinct, inverse, repeats = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True,
                                              return_counts=True)
    ids, mask = distinct[:, :length], distinct[:, length:]
    cache_k = [torch.empty((rows, w.kv_heads, w.head_dim, size), dtype=w.embed.dtype, device=dev)
               for _ in w.layers]
    cache_v = [torch.empty((rows, w.kv_heads, size, w.head_dim), dtype=w.embed.dtype, device=dev)
               for _ in w.layers]
    logits, first, per = [], 0, max(1, PREFILL_TOKENS // length)
    for lo in range(0, len(distinct), per):
        chunk_logits, keys, values = prefill(w, ids[lo:lo + per], mask[lo:lo + per])
        rep = repeats[lo:lo + per]
        last = first + int(rep.sum())
        for ck, cv, k, v in zip(cache_k, cache_v, keys, values):
            ck[first:last, :, :, :length] = k.repeat_interleave(rep, 0).transpose(-1, -2)
            cv[first:last, :, :length] = v.repeat_interleave(rep, 0)
        logits.append(chunk_logits.repeat_interleave(rep, 0))
        first = last
    mask = mask.repeat_interleave(repeats, 0)
    positions = mask.sum(-1, keepdim=True) + torch.arange(new_tokens, device=dev)
    cos, sin = rope_tables(w, positions, w.embed.dtype)
    bias = torch.zeros(rows, 1, 1, size, dtype=w.embed.dtype, device=dev)
    bias[:, 0, 0, :length].masked_fill_(mask == 0, float("-inf"))
    state = Batch(rows=torch.argsort(inverse, stable=True), keys=cache_k, values=cache_v, bias=bias, cos=cos,
                  sin=sin, alive=torch.ones(rows, dtype=torch.bool, device=dev))
    return torch.cat(logits), state


def decode(w: Weights, ids, mask, params: SamplingParams, stop_ids: list[int], generator=None):
    """Generate up to ``params.max_new_tokens`` tokens for the left-padded batch ``ids [B, L]``.

    Returns ``(tokens [B, new], LogprobRecord or None)``; a row's tokens run on past its first stop
    id (cut there by the caller). Rows stop being computed once ``DROP_SHARE`` of the batch stopped.
    """
    import torch

    steps, length = params.max_new_tokens, ids.shape[1]
    out = torch.full((steps, ids.shape[0]), -1, dtype=torch.long, device=ids.device)
    record = None if params.logprobs is None else \
        LogprobRecord(ids.shape[0], steps, params.logprobs, w.embed.shape[0], ids.device)
    if steps < 1:
        return out.T, record
    logits, state = start_batch(w, ids, mask, steps)
    stops = torch.tensor(stop_ids, dtype=torch.long, device=ids.device)
    for t in range(steps):
        tokens = sample(logits, params, generator)
        out[t].index_copy_(0, state.rows, tokens)
        if record is not None:
            record.record(t, state.rows, logits, tokens)
        if t == steps - 1:
            break
        if stop_ids:
            state.alive &= ~torch.isin(tokens, stops)
            live = int(state.alive.sum())
            if live == 0:
                break
        if stop_ids and live <= (1 - DROP_SHARE) * len(state.rows):
            index = state.alive.nonzero().squeeze(1)
            state.keep(index)
            tokens = tokens[index]
        logits = decode_step(w, state, tokens, length + t, t)
    return out.T, record


class EmbeddedGenerator:
    """The :class:`~nemotron_cascade.generation.base.Generator` over :func:`decode`, reading
    ``model``'s live weights on every call (see the module docstring)."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        from nemotron_cascade.models import stop_token_ids

        read_weights(model)  # fails now, naming what it cannot decode, not at the first rollout
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """Complete every prompt ``params.n`` times; results in prompt order."""
        import torch

        if params.logprobs is not None and params.logprobs < 0:
            raise ValueError(f"SamplingParams.logprobs must be >= 0 or None, got {params.logprobs}")
        encoded = {p: self.tokenizer(p, add_special_tokens=False).input_ids for p in set(prompts)}
        empty = [i for i, p in enumerate(prompts) if not encoded[p]]
        if empty:
            raise ValueError(f"prompts {empty[:5]} encode to no tokens: nothing to continue")
        expanded = [(i, encoded[p]) for i, p in enumerate(prompts) for _ in range(params.n)]
        order = sorted(range(len(expanded)), key=lambda k: len(expanded[k][1]))
        device = self.model.get_input_embeddings().weight.device
        generator = torch.Generator(device=device).manual_seed(params.seed)
        results: dict[int, Completion] = {}
        with torch.inference_mode():
            weights = read_weights(self.model)
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                batch = self._generate_batch(weights, [expanded[k][1] for k in chunk], params, generator)
                results.update(zip(chunk, batch))
        out: list[list[Completion]] = [[] for _ in prompts]
        for k, (i, _) in enumerate(expanded):
            out[i].append(results[k])
        return out

    def _generate_batch(self, weights: Weights, rows: list[list[int]], params: SamplingParams,
                        generator) -> list[Completion]:
        """Left-pad ``rows`` (token ids) into one batch, decode it, cut every row at its stop."""
        import torch

        device = weights.embed.device
        length = max(map(len, rows))
        ids = torch.full((len(rows), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, length - len(row):], mask[r, length - len(row):] = torch.tensor(row), 1
        tokens, record = decode(weights, ids.to(device), mask.to(device), params, self.stop_ids, generator)
        tokens = tokens.cpu().tolist()
        steps = record.entries(tokens) if record is not None else [None] * len(rows)
        return [self._completion(row, lps) for row, lps in zip(tokens, steps)]

    def _completion(self, ids: list[int], logprobs: list[dict[int, float]] | None) -> Completion:
        """Cut at the first stop id (kept). Every sampled token is kept, the pad id included, as
        HFGenerator keeps it."""
        stops = set(self.stop_ids)
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        ids = ids if end is None else ids[:end + 1]
        return Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids,
                          finished=end is not None,
                          logprobs=None if logprobs is None else logprobs[:len(ids)])


def build_embedded(model, tokenizer, batch_size: int = 64) -> EmbeddedGenerator:
    """The embedded rollout engine on ``model`` (what ``rollout_engine: embedded`` builds)."""
    return EmbeddedGenerator(model, tokenizer, batch_size=batch_size)
