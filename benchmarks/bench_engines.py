"""Training throughput of the engines: plain torch (1 process) vs DeepSpeed ZeRO-2 (2 processes), SFT and GRPO.

Same tiny model, data, seed and global batch in every arm; the DeepSpeed arm runs under
``torchrun --nproc_per_node 2`` with one thread per rank and each rank taking half of every global
batch (``ds_parity``). Torch runs once with 1 thread and once with 2
threads (the same 2 cores as the DeepSpeed arm). Reported, fp32 throughout (CPU):

* SFT: assistant tokens/s of the training loop (engine set-up excluded) and the last-step loss;
* GRPO: trained completion tokens/s of the optimiser phase (scoring, log-probs, backward, step;
  each step's time minus its rollout time) on fixed rollouts (``ds_parity.FixedRollouts``: the
  same completions in every arm, so sampling is not measured), and the last-step loss.

    .venv/bin/python benchmarks/bench_engines.py [--steps 30] [--batch-size 8] [--seq-len 512]
        [--grpo-steps 10] [--grpo-prompts 8] [--grpo-group 8] [--grpo-max-tokens 64] [--grpo-micro 16]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile


def launch(nproc: int, threads: int, args, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
        s.close()
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", port,
               "-m", "ds_parity", "--out", out, "--tasks", "sft", "grpo",
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
               "--grpo-steps", str(args.grpo_steps), "--grpo-prompts", str(args.grpo_prompts),
               "--grpo-group", str(args.grpo_group), "--grpo-max-tokens", str(args.grpo_max_tokens),
               "--grpo-micro", str(args.grpo_micro), "--grpo-poison-step", "-1", *extra]
        tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.run(cmd, cwd=tmp, env=env,
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        with open(out) as f:
            return json.load(f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--grpo-steps", type=int, default=10)
    ap.add_argument("--grpo-prompts", type=int, default=8)
    ap.add_argument("--grpo-group", type=int, default=8)
    ap.add_argument("--grpo-max-tokens", type=int, default=64)
    ap.add_argument("--grpo-micro", type=int, default=16)
    args = ap.parse_args()
    rows = []
    for threads in (1, 2):
        r = launch(1, threads, args, ["--stages"])  # no DeepSpeed stage: the torch runs only
        rows.append((f"torch, 1 process × {threads} thread(s)", r["sft"]["torch"], r["grpo"]["torch"]))
    r = launch(2, 1, args, ["--no-torch", "--stages", "2"])
    rows.append(("DeepSpeed ZeRO-2, 2 processes × 1 thread (gloo)", r["sft"]["zero2"], r["grpo"]["zero2"]))
    print(f"\nTiny model, fp32, CPU. SFT: global batch {args.batch_size} × {args.seq_len} tokens, {args.steps} steps. "
          f"GRPO: {args.grpo_prompts} prompts × {args.grpo_group} samples, ≤ {args.grpo_max_tokens} new tokens, "
          f"micro-batch {args.grpo_micro}, {args.grpo_steps} steps on fixed rollouts\n")
    print("| engine | SFT assistant tokens/s | SFT last loss | GRPO trained tokens/s | GRPO last loss |")
    print("|---|---:|---:|---:|---:|")
    for name, s, g in rows:
        print(f"| {name} | {s['tokens_per_s']:,.0f} | {s['loss'][-1]:.4f} | {g['tokens_per_s']:,.0f} | "
              f"{g['loss'][-1]:.4f} |")


if __name__ == "__main__":
    main()
