"""Math reward: Math-Verify on the final answer, time-bounded in worker processes.

``math_reward(response, ground_truth) -> {0.0, 1.0}``

How a response is judged:

1. Only the final answer counts (:func:`answers.final_answer`); an unclosed think block earns 0.
2. If the final answer holds ``\\boxed{...}`` groups, *every* boxed value must equal the ground truth:
   a hedge such as ``\\boxed{3} or \\boxed{4}`` earns 0 even if one of them is right, while the same
   value boxed twice (``\\boxed{1/2} ... \\boxed{0.5}``) is fine. Without a box, Math-Verify parses
   the final answer text itself.
3. Plain integers on both sides are compared in-process (no worker). Everything else goes to
   Math-Verify: ``verify(parse(gold), parse(pred))`` — gold first, the comparison is asymmetric.

Why worker processes: Math-Verify bounds its own time with ``signal.alarm``, which only works in the
main thread, and some inputs (exponent towers such as ``9^{9^{9^{9}}}``) run for ever. We call it with
``parsing_timeout=None, timeout_seconds=None`` inside long-lived worker processes (plain
``subprocess`` children speaking JSON lines, so nothing of the caller's ``__main__`` is re-imported and
any thread may call us), and bound each call by a wall-clock timeout: a worker that overruns is
killed, replaced at once, and the answer scores 0.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from nemotron_cascade.rewards.answers import boxed_all, final_answer

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 120.0
DEFAULT_NUM_WORKERS = max(1, min(4, os.cpu_count() or 1))

_INTEGER_CHARS = frozenset("0123456789")
_SRC_ROOT = str(Path(__file__).resolve().parents[2])
_WORKER_CODE = "from nemotron_cascade.rewards.math import _worker_main; _worker_main()"


# --------------------------------------------------------------------------------------------------
# What to verify
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """Texts handed to Math-Verify: the gold and every prediction that must match it."""

    gold: str
    preds: tuple[str, ...]


def _plain_number(text: str) -> Decimal | None:
    """``Decimal`` of a plain (signed) integer or decimal such as ``-12`` or ``0.75``, else ``None``."""
    body = text[1:] if text[:1] in "+-" else text
    whole, _, fraction = body.partition(".")
    if not whole or not set(whole) <= _INTEGER_CHARS or (fraction and not set(fraction) <= _INTEGER_CHARS):
        return None
    if body.endswith("."):
        return None
    return Decimal(text)


def _fast_verdict(gold: str, preds: Sequence[str]) -> float | None:
    """Decide in-process when every value is a plain number, or return ``None`` (ask Math-Verify).

    Equal numbers are right. Unequal *integers* are wrong. Unequal decimals are left to Math-Verify,
    which rounds floats (``0.3333333`` may equal ``0.333333`` there).
    """
    gold_value = _plain_number(gold)
    values = [_plain_number(p) for p in preds]
    if gold_value is None or any(v is None for v in values):
        return None
    if all(v == gold_value for v in values):
        return 1.0
    if "." not in gold and not any("." in p for p in preds):
        return 0.0
    return None


def _gold_text(ground_truth: str) -> str:
    """Wrap a bare ground truth (``3/4``, ``\\frac{1}{2}``) in ``\\boxed{}`` so Math-Verify reads it."""
    if "\\boxed" in ground_truth or "$" in ground_truth:
        return ground_truth
    return "\\boxed{" + ground_truth + "}"


def _coerce_ground_truth(ground_truth: object) -> str:
    """Ground truth as a non-empty string; numbers are accepted, anything else is a data error."""
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        raise TypeError(f"ground_truth must be a str, got {type(ground_truth).__name__}")
    text = str(ground_truth).strip()
    if not text:
        raise ValueError("ground_truth is empty")
    return text


def _plan(response: str, ground_truth: object) -> float | _Job:
    """Either the reward already (no answer, fast path) or the Math-Verify job that decides it."""
    gold = _coerce_ground_truth(ground_truth)
    answer = final_answer(response)
    if not answer:
        return 0.0
    boxes = list(dict.fromkeys(boxed_all(answer)))
    if any(not b for b in boxes):
        return 0.0
    fast = _fast_verdict(gold, boxes if boxes else [answer])
    if fast is not None:
        return fast
    preds = tuple("\\boxed{" + b + "}" for b in boxes) if boxes else (answer,)
    return _Job(gold=_gold_text(gold), preds=preds)


# --------------------------------------------------------------------------------------------------
# Worker side (runs in the child process)
# --------------------------------------------------------------------------------------------------
def _verify_all(gold_text: str, pred_texts: Sequence[str]) -> bool:
    """True iff the gold parses and every prediction parses and verifies against it."""
    from math_verify import parse, verify

    gold = parse(gold_text, parsing_timeout=None)
    if not gold:
        logger.warning("Math-Verify could not parse the ground truth %r", gold_text[:200])
        return False
    for text in pred_texts:
        pred = parse(text, parsing_timeout=None)
        if not pred or not verify(gold, pred, timeout_seconds=None):
            return False
    return True


def _worker_main() -> None:
    """Serve JSON-line requests ``{"gold", "preds"}`` on stdin with ``{"ok"}`` lines on stdout."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401  (import cost paid before "ready")

    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": _verify_all(request["gold"], request["preds"])}
        except Exception as error:  # noqa: BLE001 - any failure scores 0, reported to the parent
            reply = {"error": repr(error)[:500]}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


# --------------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------------
class _WorkerGone(RuntimeError):
    """The worker process exited or closed its pipes."""


class _Worker:
    """One child process running :func:`_worker_main`; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        self._ready = False

    def _read_line(self, deadline: float) -> bytes | None:
        """Next line from the worker, ``None`` when ``deadline`` passes first."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerGone(f"math worker exited with code {self.proc.poll()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _await_ready(self) -> None:
        """Block until the worker has imported Math-Verify; a worker that cannot start is an error."""
        if self._ready:
            return
        try:
            line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        except _WorkerGone as error:
            raise RuntimeError(f"math worker failed to start: {error}") from error
        if line is None:
            raise RuntimeError(f"math worker not ready after {STARTUP_TIMEOUT_S} s")
        self._ready = True

    def request(self, job: _Job, timeout_s: float) -> bool | None:
        """The worker's verdict on ``job``; ``None`` when it overran ``timeout_s``."""
        self._await_ready()
        payload = json.dumps({"gold": job.gold, "preds": list(job.preds)}) + "\n"
        try:
            self.proc.stdin.write(payload.encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise _WorkerGone(str(error)) from error
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            return None
        reply = json.loads(line)
        if "error" in reply:
            logger.warning("Math-Verify raised %s; scoring 0", reply["error"])
            return False
        return bool(reply["ok"])

    def kill(self) -> None:
        """Kill the child and reap it."""
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class MathVerifyPool:
    """A fixed number of Math-Verify workers shared by any number of threads.

    Workers start lazily; one that overruns its timeout or dies is killed and replaced at once (the
    replacement imports Math-Verify in the background while the caller moves on).
    """

    def __init__(self, num_workers: int = DEFAULT_NUM_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers
        self.timeout_s = timeout_s
        self.pid = os.getpid()
        self._closed = False
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(num_workers):
            self._idle.put(None)

    def verify(self, job: _Job, timeout_s: float | None = None) -> bool:
        """Run ``job`` on an idle worker within ``timeout_s`` (pool default); overrun → False."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        worker = self._checkout()
        try:
            worker = worker or _Worker()
            verdict = worker.request(job, limit)
            if verdict is None:
                logger.warning("Math-Verify overran %.1f s; worker replaced, scoring 0", limit)
                worker.kill()
                worker = None
                worker = _Worker()  # start the replacement now: it imports while we move on
                return False
            return verdict
        except _WorkerGone as error:
            logger.warning("math worker died (%s); replaced, scoring 0", error)
            worker.kill()
            worker = None
            return False
        except RuntimeError:
            if worker is not None:
                worker.kill()
            worker = None
            raise
        finally:
            self._release(worker)

    def _checkout(self) -> _Worker | None:
        """Wait for an idle worker slot (``None`` = not started yet); fails once the pool is closed."""
        while True:
            if self._closed:
                raise RuntimeError("the Math-Verify pool is closed")
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                continue

    def _release(self, worker: _Worker | None) -> None:
        """Return a worker to the idle queue, or kill it when the pool has been closed meanwhile."""
        if self._closed and worker is not None:
            worker.kill()
            return
        self._idle.put(worker)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def warm_up(self) -> None:
        """Start every worker and wait until each has imported Math-Verify."""
        workers = [self._idle.get() for _ in range(self.num_workers)]
        try:
            workers = [w or _Worker() for w in workers]
            for worker in workers:
                worker._await_ready()
        finally:
            for worker in workers:
                self._release(worker)

    def close(self) -> None:
        """Kill every worker (only in the process that started them)."""
        if os.getpid() != self.pid:
            return
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.kill()


_POOL: MathVerifyPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> MathVerifyPool:
    """The process-wide pool, created on first use (and afresh in a forked child)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid() or _POOL.closed:
            _POOL = MathVerifyPool()
        return _POOL


def configure_pool(num_workers: int = DEFAULT_NUM_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S) -> MathVerifyPool:
    """Replace the process-wide pool (killing the old workers) with one of the given size/timeout."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = MathVerifyPool(num_workers=num_workers, timeout_s=timeout_s)
        return _POOL


@atexit.register
def _close_pool() -> None:
    if _POOL is not None:
        _POOL.close()


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------
def math_reward(response: str, ground_truth: str, timeout_s: float | None = None) -> float:
    """1.0 iff the response's final answer equals ``ground_truth`` (Math-Verify), else 0.0."""
    plan = _plan(response, ground_truth)
    if isinstance(plan, float):
        return plan
    return 1.0 if get_pool().verify(plan, timeout_s) else 0.0


def batch_math_reward(
    responses: Sequence[str], ground_truths: Sequence[str], timeout_s: float | None = None
) -> list[float]:
    """:func:`math_reward` for many pairs, the Math-Verify calls spread over the worker pool."""
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    plans = [_plan(r, g) for r, g in zip(responses, ground_truths)]
    jobs = [(i, p) for i, p in enumerate(plans) if isinstance(p, _Job)]
    rewards = [p if isinstance(p, float) else 0.0 for p in plans]
    if not jobs:
        return rewards
    pool = get_pool()
    with ThreadPoolExecutor(max_workers=min(pool.num_workers, len(jobs))) as threads:
        verdicts = threads.map(lambda item: pool.verify(item[1], timeout_s), jobs)
        for (index, _), ok in zip(jobs, verdicts):
            rewards[index] = 1.0 if ok else 0.0
    return rewards
