"""SFT throughput and packing efficiency: packed blocks vs unpacked padded batches, same data.

Both arms train the same tiny model on the same SFT samples for the same number of samples seen;
the unpacked reference pads each batch to its longest sample (the common default of HF
collators). Printed: samples/s, all tokens/s, real (non-padding) tokens/s, and the share of
non-padding tokens.

    .venv/bin/python benchmarks/bench_sft_packing.py [--samples 1200] [--block 384]
"""

from __future__ import annotations

import argparse
import time

import torch

from nemotron_cascade import chat, models
from nemotron_cascade.data import sft as sft_data
from nemotron_cascade.data import world
from nemotron_cascade.training import packing
from nemotron_cascade.training.sft import token_loss


def corpus(n: int) -> list[dict]:
    per = max(1, n // len(world.DOMAINS))
    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", per, 0)]
    return sft_data.teacher_samples(rows, 0.7, 0.0, 0, world.oracle_response)


def run_arm(model, batches: list[list[packing.Block]], pad_id: int) -> tuple[float, int, int]:
    """Train over ``batches`` (each padded to its longest row); return seconds, tokens, real tokens."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = real = 0
    start = time.perf_counter()
    for batch in batches:
        width = max(len(b.input_ids) for b in batch)
        ids = torch.tensor([b.input_ids + [pad_id] * (width - len(b.input_ids)) for b in batch])
        labels = torch.tensor([b.labels + [-100] * (width - len(b.labels)) for b in batch])
        pos = torch.tensor([b.position_ids + list(range(width - len(b.position_ids))) for b in batch])
        loss = token_loss(model, ids, labels, pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += ids.numel()
        real += sum(b.n_real for b in batch)
    return time.perf_counter() - start, tokens, real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1200)
    ap.add_argument("--block", type=int, default=384)
    ap.add_argument("--tokens-per-step", type=int, default=4096)
    args = ap.parse_args()
    torch.set_num_threads(2)
    samples = corpus(args.samples)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 1024)
    toks = [t for t in (packing.tokenize_sample(s, tok) for s in samples) if len(t.input_ids) <= args.block]
    packed = packing.pack(toks, args.block, tok.pad_token_id)
    unpacked = packing.pad_unpacked(toks, tok.pad_token_id)
    import random

    random.Random(0).shuffle(unpacked)
    per_batch = max(1, args.tokens_per_step // args.block)
    mean_len = sum(len(t.input_ids) for t in toks) / len(toks)
    unpacked_bs = max(1, round(args.tokens_per_step / mean_len))
    arms = {
        "packed (best-fit, block-diagonal mask)": [packed[i:i + per_batch] for i in range(0, len(packed), per_batch)],
        "unpacked, padded per batch": [unpacked[i:i + unpacked_bs] for i in range(0, len(unpacked), unpacked_bs)],
    }
    cfg = models.TinyModelConfig()
    print(f"{len(toks)} samples, mean {mean_len:.0f} tokens, block {args.block}, "
          f"~{args.tokens_per_step} real tokens/step")
    print("| arm | steps | seconds | samples/s | tokens/s | real tokens/s | non-padding share |")
    print("|---|---|---|---|---|---|---|")
    for name, batches in arms.items():
        model = models.build_tiny_model(tok, cfg)
        secs, tokens, real = run_arm(model, batches, tok.pad_token_id)
        print(f"| {name} | {len(batches)} | {secs:.1f} | {len(toks) / secs:.1f} | {tokens / secs:,.0f} | "
              f"{real / secs:,.0f} | {real / tokens:.3f} |")


if __name__ == "__main__":
    main()
