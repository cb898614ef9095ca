"""Throughput of the code sandbox: executions per second of a trivial program.

Runs ``print(input())`` through :func:`run_program` serially and with a thread pool, and the same
program as full responses through :func:`batch_code_reward`, then prints a small table.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

from nemotron_cascade.rewards.code import batch_code_reward
from nemotron_cascade.rewards.sandbox import run_program, sandbox_available

PROGRAM = "print(input())\n"
RESPONSE = f"```python\n{PROGRAM}```"
TESTS = [{"input": "hello\n", "output": "hello\n"}]


def _run_once(_: int) -> None:
    """One sandboxed execution; fail loudly if it does not echo."""
    result = run_program(PROGRAM, "hello\n")
    if result.stdout != "hello\n":
        raise RuntimeError(f"unexpected result: {result}")


def time_run_program(runs: int, workers: int) -> float:
    """Executions per second of ``run_program`` with ``workers`` threads."""
    start = time.perf_counter()
    if workers == 1:
        for i in range(runs):
            _run_once(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_run_once, range(runs)))
    return runs / (time.perf_counter() - start)


def time_batch_reward(runs: int, workers: int) -> float:
    """Rewards per second of ``batch_code_reward`` (one test per response)."""
    start = time.perf_counter()
    rewards = batch_code_reward([RESPONSE] * runs, [TESTS] * runs, max_workers=workers)
    elapsed = time.perf_counter() - start
    if rewards != [1.0] * runs:
        raise RuntimeError("a trivial correct program was not rewarded")
    return runs / elapsed


def main() -> None:
    """Parse arguments, warm up, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="executions per measurement")
    parser.add_argument("--workers", type=int, default=2, help="threads for the parallel rows")
    args = parser.parse_args()
    backend = "bubblewrap" if sandbox_available() else "UNSAFE fallback (no bubblewrap)"
    time_run_program(5, 1)  # warm-up: probe, page cache
    rows = [
        ("run_program", 1, time_run_program(args.runs, 1)),
        ("run_program", args.workers, time_run_program(args.runs, args.workers)),
        ("batch_code_reward", 1, time_batch_reward(args.runs, 1)),
        ("batch_code_reward", args.workers, time_batch_reward(args.runs, args.workers)),
    ]
    print(f"sandbox: {backend}; {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"{args.runs} runs of print(input()) per row")
    print(f"{'what':<20}{'workers':>8}{'exec/s':>10}{'ms/exec':>10}")
    for what, workers, rate in rows:
        print(f"{what:<20}{workers:>8}{rate:>10.1f}{1000 / rate:>10.1f}")


if __name__ == "__main__":
    main()
