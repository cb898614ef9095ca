"""SFT throughput of the training engines: plain torch (1 process) vs DeepSpeed ZeRO-2 (2 processes).

Same tiny model, data, seed and global batch in every arm; the DeepSpeed arm runs under
``torchrun --nproc_per_node 2`` with one thread per rank and each rank taking half of every global
batch (``nemotron_cascade.training.ds_parity``). Torch runs once with 1 thread and once with 2
threads (the same 2 cores as the DeepSpeed arm). Reported: assistant tokens/s of the training
loop (engine set-up excluded) and the last-step loss. fp32 throughout (CPU).

    .venv/bin/python benchmarks/bench_engines.py [--steps 30] [--batch-size 8] [--seq-len 512]
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
               "-m", "nemotron_cascade.training.ds_parity", "--out", out, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len), *extra]
        proc = subprocess.run(cmd, cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
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
    args = ap.parse_args()
    rows = []
    for threads in (1, 2):
        r = launch(1, threads, args, ["--stages"])["torch"]  # no DeepSpeed stage: the torch run only
        rows.append((f"torch, 1 process × {threads} thread(s)", r))
    r = launch(2, 1, args, ["--no-torch", "--stages", "2"])["zero2"]
    rows.append(("DeepSpeed ZeRO-2, 2 processes × 1 thread (gloo)", r))
    print(f"\nSFT, tiny model, global batch {args.batch_size} × {args.seq_len} tokens, {args.steps} steps, fp32, CPU\n")
    print("| engine | assistant tokens/s | last loss |")
    print("|---|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['tokens_per_s']:,.0f} | {r['loss'][-1]:.4f} |")


if __name__ == "__main__":
    main()
