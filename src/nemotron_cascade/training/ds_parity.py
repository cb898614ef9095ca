"""DeepSpeed ZeRO vs plain torch on the tiny model: per-step SFT losses, for the parity test.

Launch with ``torchrun --nproc_per_node 2 -m nemotron_cascade.training.ds_parity --out FILE``.
Rank 0 first trains a fresh tiny model with the plain torch engine (one process, whole global
batch), then every rank trains fresh copies with DeepSpeed ZeRO-2 and ZeRO-3 in fp32, each rank
taking half of every global batch. Rank 0 alone writes ``FILE``: the per-step losses of each run,
the largest absolute difference of the final weights from the torch run, and the assistant
tokens/s of the loop (engine set-up excluded; used by ``benchmarks/bench_engines.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def tiny_setup(seq_len: int = 128):
    """Tokenizer, a fresh-model factory and packed blocks, built like ``tests/conftest.py``."""
    from nemotron_cascade import chat, models
    from nemotron_cascade.data import sft as sft_data, world
    from nemotron_cascade.training import packing

    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 30, 0)]
    samples = sft_data.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 400)

    def fresh():
        return models.build_tiny_model(tok, models.TinyModelConfig(
            hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))

    blocks, _ = packing.prepare_blocks(samples, tok, seq_len)
    return fresh, blocks


def fp32_zero(stage: int) -> dict:
    return {"zero_optimization": {"stage": stage}, "bf16": {"enabled": False},
            "steps_per_print": 10**9, "zero_allow_untested_optimizer": True}


def main(argv=None) -> None:
    import torch
    import torch.distributed as dist

    from nemotron_cascade.training import sft

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--stages", type=int, nargs="*", default=[2, 3])
    ap.add_argument("--no-torch", action="store_true", help="skip the plain torch reference run")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    fresh, blocks = tiny_setup(args.seq_len)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    base = dict(lr=1e-2, max_steps=args.steps, warmup_steps=2, batch_size=args.batch_size, log_every=1)
    out: dict = {"steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len}
    ref = None
    if rank0 and not args.no_torch:
        ref_model = fresh()
        t = time.perf_counter()
        hist = sft.train_sft(ref_model, blocks, sft.SFTConfig(**base))
        out["torch"] = {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist],
                        "tokens_per_s": hist[-1]["assistant_tokens_per_s"], "seconds": time.perf_counter() - t}
        ref = ref_model.state_dict()
    for stage in args.stages:
        model = fresh()
        t = time.perf_counter()
        hist = sft.train_sft(model, blocks, sft.SFTConfig(**base, engine="deepspeed", deepspeed=fp32_zero(stage)))
        secs = time.perf_counter() - t
        if rank0:
            run = {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist],
                   "seconds": secs, "tokens_per_s": hist[-1]["assistant_tokens_per_s"], "world_size": dist.get_world_size()}
            if ref is not None:
                sd = model.state_dict()
                run["max_weight_diff"] = max(float((sd[k] - v).abs().max()) for k, v in ref.items())
            out[f"zero{stage}"] = run
    if rank0:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
