"""Peak memory of the SFT loss and the GRPO log-probs: the whole LM head vs the chunked one.

A Qwen3 causal LM with the real Qwen3 vocabulary (151,936) and a small body (hidden 256, 1 layer,
fp32, tied embeddings) so that the LM head dominates; one sequence of ``--tokens`` tokens. Arms:

* ``body``: the body alone (final hidden states summed, backward): the floor every arm pays
  (activations, the embedding's gradient);
* ``loss-full`` / ``loss-chunked``: ``sft.token_loss`` (labels on every token after the prompt, the
  first eighth; ``chunk_tokens`` None or ``--chunk``), forward and backward;
* ``logprobs-full`` / ``logprobs-chunked``: ``update.sequence_logprobs`` (the first eighth a prompt,
  the rest a completion) and ``policy_loss`` on them, forward and backward;
* ``diff``: both paths of both functions in one process: the largest absolute difference of the
  values (loss; log-probs and entropy at completion positions) and of every parameter gradient.

Method: each arm runs in a fresh subprocess. After the model and inputs are built it returns freed
heap memory to the OS (``malloc_trim``), reads its resident set (``VmRSS``), resets the kernel's
peak-RSS mark (``echo 5 > /proc/self/clear_refs``, Linux ≥ 4.0), runs forward and backward once
and reads the peak (``VmHWM``): peak extra = VmHWM − VmRSS before. glibc's mmap threshold is fixed
at 1 MiB (``MALLOC_MMAP_THRESHOLD_``) so every tensor of 1 MiB or more is its own mapping, counted
while it lives and returned when freed. The full fp32 logits of one 8,192-token sequence are
8,192 × 151,936 × 4 B = 4.98 GB, and the unchunked paths make several copies: on a small machine
run the full arms at shorter lengths (``--full-tokens``) and extrapolate (peak ∝ tokens).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_token_memory.py \\
        [--tokens 8192] [--full-tokens 1024 2048] [--chunk 256 1024] [--diff-tokens 2048]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

VOCAB, HIDDEN = 151_936, 256


def prompt_len(tokens: int) -> int:
    """The prompt: the first eighth of the sequence (1,024 of 8,192 tokens)."""
    return tokens // 8


def build(tokens: int):
    """The model and one sequence: ids, SFT labels (prompt masked) and position ids."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        head_dim=64, intermediate_size=768, max_position_embeddings=max(tokens, 8192), tie_word_embeddings=True,
        pad_token_id=0, eos_token_id=1, bos_token_id=None))
    ids = torch.randint(2, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :prompt_len(tokens)] = -100
    return model, ids, labels, torch.arange(tokens).unsqueeze(0)


def run(arm: str, model, ids, labels, pos, chunk: int | None):
    """One forward and backward of ``arm``; the loss (a float)."""
    import torch

    from nemotron_cascade.rl.grpo import policy_loss
    from nemotron_cascade.rl.update import sequence_logprobs
    from nemotron_cascade.training.sft import token_loss

    if arm == "body":
        loss = model.model(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state.sum()
    elif arm.startswith("loss"):
        loss = token_loss(model, ids, labels, pos, chunk_tokens=chunk)
    else:
        seq, n = ids[0].tolist(), prompt_len(ids.shape[1])
        lp, mask, _ = sequence_logprobs(model, [seq[:n]], [seq[n:]], 0, chunk)
        loss = policy_loss(lp, torch.tensor([1.0]), mask)
    loss.backward()
    return float(loss)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure(arm: str, tokens: int, chunk: int | None) -> dict:
    """Peak extra resident memory (MB) of one forward and backward of ``arm``, in this process."""
    model, ids, labels, pos = build(tokens)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    loss = run(arm, model, ids, labels, pos, chunk)
    return {"arm": arm, "tokens": tokens, "chunk": chunk, "peak_extra_mb": (_status_kb("VmHWM") - before) / 1024,
            "seconds": time.perf_counter() - t0, "loss": loss}


def differences(tokens: int, chunk: int) -> dict:
    """Largest absolute differences, chunked vs whole head, of values and parameter gradients."""
    import torch

    from nemotron_cascade.rl.update import sequence_logprobs
    from nemotron_cascade.training.sft import token_loss

    model, ids, labels, pos = build(tokens)
    seq, n = ids[0].tolist(), prompt_len(tokens)

    def grads():
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
        return g

    def sft(c):
        loss = token_loss(model, ids, labels, pos, chunk_tokens=c)
        loss.backward()
        return loss.detach(), grads()

    def grpo(c):
        lp, mask, ent = sequence_logprobs(model, [seq[:n]], [seq[n:]], 0, c)
        (lp * mask).sum().div(mask.sum()).backward()
        return lp.detach() * mask, ent * mask, grads()

    (l0, g0), (l1, g1) = sft(None), sft(chunk)
    (p0, e0, h0), (p1, e1, h1) = grpo(None), grpo(chunk)
    return {"arm": "diff", "tokens": tokens, "chunk": chunk, "loss": float((l0 - l1).abs()),
            "loss_grad": float((g0 - g1).abs().max()), "logprobs": float((p0 - p1).abs().max()),
            "entropy": float((e0 - e1).abs().max()), "logprobs_grad": float((h0 - h1).abs().max()),
            "grad_scale": float(g0.abs().max())}


def spawn(arm: str, tokens: int, chunk: int | None) -> dict:
    """:func:`measure` (or :func:`differences`) in a fresh subprocess."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    cmd = [sys.executable, __file__, "--arm", arm, "--tokens", str(tokens)] + (["--chunk", str(chunk)] if chunk else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"arm {arm} at {tokens} tokens failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plan(args) -> list[tuple[str, int, int | None]]:
    """The (arm, tokens, chunk) runs: the floor, the whole head at the short lengths, the chunked
    head at those and at ``--tokens`` for every chunk size."""
    runs = [("body", t, None) for t in (*args.full_tokens, args.tokens)]
    for kind in ("loss", "logprobs"):
        runs += [(f"{kind}-full", t, None) for t in args.full_tokens]
        runs += [(f"{kind}-chunked", t, c) for c in args.chunk for t in (*args.full_tokens, args.tokens)]
    return runs


def table(results: list[dict]) -> str:
    """Peak extra MB per arm (rows) and length (columns), as a markdown table."""
    lengths = sorted({r["tokens"] for r in results})
    arms = list(dict.fromkeys((r["arm"], r["chunk"]) for r in results))
    peak = {(r["arm"], r["chunk"], r["tokens"]): r["peak_extra_mb"] for r in results}
    lines = ["| arm | chunk | " + " | ".join(f"{t} tokens" for t in lengths) + " |",
             "|---|---|" + "---|" * len(lengths)]
    for arm, chunk in arms:
        cells = [f"{peak[arm, chunk, t]:,.0f}" if (arm, chunk, t) in peak else "" for t in lengths]
        lines.append(f"| {arm} | {chunk or ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--full-tokens", type=int, nargs="*", default=[1024, 2048])
    ap.add_argument("--chunk", type=int, nargs="*", help="chunk sizes (default 256 1024)")
    ap.add_argument("--diff-tokens", type=int, default=2048)
    ap.add_argument("--arm", help="run one arm in this process (internal)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.arm and args.arm != "diff":
        print(json.dumps(measure(args.arm, args.tokens, args.chunk[0] if args.chunk else None)))
        return
    args.chunk = args.chunk or [256, 1024]
    if args.arm == "diff":
        print(json.dumps(differences(args.tokens, args.chunk[0])))
        return
    results = []
    for arm, tokens, chunk in plan(args):
        results.append(spawn(arm, tokens, chunk))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps(spawn("diff", args.diff_tokens, args.chunk[0])), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
