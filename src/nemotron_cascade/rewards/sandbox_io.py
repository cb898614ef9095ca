"""Process I/O for the sandbox: feed stdin, drain stdout/stderr within the output limits and the
wall-clock timeout, and kill the program's whole process group (and any child that left it) at the
end. Used by :mod:`~nemotron_cascade.rewards.sandbox`, which builds the isolated command."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_MAX_STDERR_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
_WRITE_CHUNK = 64 * 1024
_EXIT_GRACE_SECONDS = 0.1


def exchange(
    proc: subprocess.Popen, stdin: bytes, limits
) -> tuple[bytes, bytes, bool, bool]:
    """Feed stdin and read stdout/stderr until EOF, the wall limit, or the output limit."""
    assert proc.stdin and proc.stdout and proc.stderr
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + limits.wall_seconds
    written, timed_out, truncated = 0, False, False
    with selectors.DefaultSelector() as selector:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        selector.register(proc.stdout, selectors.EVENT_READ, (out, limits.max_output_bytes, True))
        selector.register(proc.stderr, selectors.EVENT_READ, (err, _MAX_STDERR_BYTES, False))
        if stdin:
            selector.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        while selector.get_map() and not truncated:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            events = selector.select(min(remaining, _EXIT_GRACE_SECONDS))
            if not events and _has_exited(proc):
                break  # exited; only an escaped descendant (unsafe mode) could hold the pipes
            for key, _ in events:
                if key.fileobj is proc.stdin:
                    written = _feed(selector, proc.stdin, stdin, written)
                elif not _drain(selector, key):
                    truncated = True
    stdout, stderr = bytes(out[: limits.max_output_bytes]), bytes(err[:_MAX_STDERR_BYTES])
    return stdout, stderr, timed_out, truncated


def _feed(selector: selectors.BaseSelector, pipe, data: bytes, written: int) -> int:
    """Write the next chunk of stdin; close it when done or when the program stopped reading."""
    try:
        written += os.write(pipe.fileno(), data[written : written + _WRITE_CHUNK])
    except BlockingIOError:
        return written
    except (BrokenPipeError, OSError):
        written = len(data)
    if written >= len(data):
        selector.unregister(pipe)
        pipe.close()
    return written


def _drain(selector: selectors.BaseSelector, key: selectors.SelectorKey) -> bool:
    """Read one chunk into the key's buffer; False when it went past a limit that fails the run."""
    buffer, limit, fail_when_over = key.data
    try:
        chunk = os.read(key.fd, _READ_CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        selector.unregister(key.fileobj)
        return True
    buffer += chunk[: max(0, limit + 1 - len(buffer))]  # keep at most limit + 1 bytes
    return not (fail_when_over and len(buffer) > limit)


def kill_and_reap(proc: subprocess.Popen) -> None:
    """Kill everything the run started and return only once it is gone.

    Killing bwrap's child (the PID namespace's init) makes the kernel kill every process in the
    namespace and reap them all before that child's exit reaches bwrap, which then exits. Killing
    bwrap first would leave the namespace to die asynchronously, after we return. The process
    group kill covers bwrap itself and, in the unsafe fallback, the program's own group; it happens
    before bwrap is reaped, so its pid (the group id) cannot have been reused.
    """
    if not _has_exited(proc):
        for child in _children(proc.pid):
            _signal(child, os.kill)
        _has_exited(proc, wait_seconds=5.0)
    _signal(proc.pid, os.killpg)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            pipe.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.error("sandboxed process %d did not die after SIGKILL", proc.pid)


def _has_exited(proc: subprocess.Popen, wait_seconds: float = 0.0) -> bool:
    """Whether ``proc`` has exited (waiting up to ``wait_seconds``), without reaping it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            status = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # already reaped
        if status is not None or time.monotonic() >= deadline:
            return status is not None
        time.sleep(0.002)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty when /proc cannot tell)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _signal(pid: int, kill) -> None:
    """SIGKILL ``pid`` (a process or a group) with ``kill``, ignoring ones already gone."""
    try:
        kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
