"""Where GRPO's rollout time goes on CPU: milliseconds per decoded token of the tiny Qwen3 policy.

Rows: HF ``generate`` (the default rollout engine, what TRL's ``GRPOTrainer`` also calls) at batch
sizes 8..128, and at batch 64 three leaner decoders of the same model: a plain loop over the model's
forward with a ``DynamicCache``, the same with a ``StaticCache``, and that step under
``torch.compile`` (compile time reported apart). Same prompts (rendered world math tasks, left
padded), random weights, 40 new tokens forced (``min_new_tokens``), temperature 1.

Then the embedded rollout engine (:mod:`nemotron_cascade.generation.embedded`) against HF
``generate`` at batch 64, measured in interleaved rounds (best round of each kept, so a round slowed
by another process on the machine does not decide): on 64 distinct prompts (the rows above), and on
a GRPO-shaped batch of 8 prompts x 8 samples, where the engine prefills each prompt once. The engine
reads the weights, prefills and decodes inside every timed call; no stop id, so it also decodes all
40 tokens. The ratio is HF's ms per token step over the engine's.

    .venv/bin/python benchmarks/bench_decode.py [--threads 2] [--new-tokens 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

from nemotron_cascade import chat, models  # noqa: E402
from nemotron_cascade.data import sft, world  # noqa: E402
from nemotron_cascade.generation import embedded  # noqa: E402
from nemotron_cascade.generation.base import SamplingParams  # noqa: E402


def setup(n_prompts: int):
    rows = world.generate_tasks("math", "rl", n_prompts, 0)
    samples = sft.teacher_samples(rows, 1.0, 0.0, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 1024)
    tok.padding_side = "left"
    model = models.build_tiny_model(tok, models.TinyModelConfig(seed=0)).eval()
    return rows, tok, model


def encode(tok, rows, batch: int, samples: int = 1):
    """``batch`` rendered prompts, each distinct prompt repeated ``samples`` times in a row."""
    prompts = [world.render_prompt(rows[(i // samples) % len(rows)], True) for i in range(batch)]
    return tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)


def embedded_decode(model, enc, n: int):
    """The embedded engine's whole call on a left-padded batch: read the live weights, prefill,
    sample ``n`` tokens at temperature 1 (no stop id, like ``min_new_tokens`` for HF)."""
    params = SamplingParams(max_new_tokens=n, temperature=1.0, seed=0)
    generator = torch.Generator().manual_seed(0)

    def run():
        with torch.inference_mode():
            embedded.decode(embedded.read_weights(model), enc.input_ids, enc.attention_mask, params, [], generator)
    return run


def interleaved(fns: dict, n: int, rounds: int) -> dict:
    """Best ms per token step of each function over ``rounds`` rounds that run them in turn."""
    times = {name: [] for name in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(rounds):
            for name, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t) / n * 1000)
    return {name: min(ts) for name, ts in times.items()}


def hf_generate(model, tok, enc, n: int):
    return model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=True, temperature=1.0, top_k=None,
                          top_p=1.0, pad_token_id=tok.pad_token_id)


def make_loop(model, enc, n: int, cache: str, compiled: bool):
    """A sampling loop over the model's forward: prefill, then one token a step with the cache."""
    from transformers import DynamicCache, StaticCache

    ids, am0 = enc.input_ids, enc.attention_mask
    b, length = ids.shape
    static = StaticCache(config=model.config, max_cache_len=length + n) if cache == "static" else None

    def step(tokens, mask, pos, cpos, kv):
        return model(input_ids=tokens, attention_mask=mask, position_ids=pos, past_key_values=kv,
                     cache_position=cpos, use_cache=True).logits[:, -1]

    fn = torch.compile(step, dynamic=False) if compiled else step

    def run():
        kv = static if static is not None else DynamicCache()
        if static is not None:
            static.reset()
        mask = torch.cat([am0, am0.new_zeros(b, n)], 1)
        pos = (am0.cumsum(-1) - 1).clamp(min=0)
        logits = step(ids, mask[:, :length], pos, torch.arange(length), kv)
        last = pos[:, -1:]
        for t in range(n):
            nxt = torch.multinomial(torch.softmax(logits, -1), 1)
            mask[:, length + t] = 1
            last = last + 1
            m = mask if static is not None else mask[:, :length + t + 1]
            logits = fn(nxt, m, last, torch.tensor([length + t]), kv)
    return run


def ms_per_token(fn, n: int, reps: int) -> float:
    with torch.no_grad():
        fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
    return (time.perf_counter() - t) / reps / n * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the engine comparison")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    n = args.new_tokens
    rows, tok, model = setup(128)
    table = []
    for batch in (8, 16, 32, 64, 128):
        enc = encode(tok, rows, batch)
        ms = ms_per_token(lambda: hf_generate(model, tok, enc, n), n, args.reps)
        table.append((f"HF generate, batch {batch}", ms, batch * 1000 / ms, ""))
    enc = encode(tok, rows, 64)
    for name, cache, compiled in (("forward loop, DynamicCache", "dynamic", False),
                                  ("forward loop, StaticCache", "static", False),
                                  ("forward loop, StaticCache, torch.compile", "static", True)):
        run = make_loop(model, enc, n, cache, compiled)
        t0 = time.perf_counter()
        with torch.no_grad():
            run()  # warm-up (compiles)
        first = time.perf_counter() - t0
        ms = ms_per_token(run, n, args.reps)
        table.append((f"{name}, batch 64", ms, 64 * 1000 / ms, f"first call {first:.1f} s" if compiled else ""))
    for label, samples in (("64 prompts", 1), ("8 prompts x 8 samples", 8)):
        enc = encode(tok, rows, 64, samples)
        best = interleaved({"hf": lambda e=enc: hf_generate(model, tok, e, n),
                            "embedded": embedded_decode(model, enc, n)}, n, args.rounds)
        ratio = best["hf"] / best["embedded"]
        table.append((f"HF generate, batch 64 = {label}", best["hf"], 64 * 1000 / best["hf"],
                      f"best of {args.rounds} interleaved rounds"))
        table.append((f"embedded engine, batch 64 = {label}", best["embedded"], 64 * 1000 / best["embedded"],
                      f"**{ratio:.2f}x** HF generate"))
    print(f"\nDecode of the tiny Qwen3 ({models.count_parameters(model) / 1e6:.2f} M parameters), {n} new tokens, "
          f"{torch.get_num_threads()} threads")
    print("| decoder | ms per token step | tokens/s | note |\n|---|---:|---:|---|")
    for name, ms, tps, note in table:
        print(f"| {name} | {ms:.1f} | {tps:,.0f} | {note} |")


if __name__ == "__main__":
    main()
