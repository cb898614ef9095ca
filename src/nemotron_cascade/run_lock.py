"""The lock of a run journal: an exclusive ``flock`` held for a ``kedro run``'s life.

Why ``flock`` and not a pid in a file: the kernel drops a ``flock`` when its process dies, however
it dies (``kill -9``, OOM, Ctrl-C), so a lock is never stale, and a pid that the system has since
given to another process never passes for a live run. The pid written into the file only names
the holder in the refusal message. The file is removed on release; one left by a killed process
is held by no one and is simply taken. The descriptor is not inherited by the processes a node
starts (Python opens files non-inheritable), so a lock lives exactly as long as its run.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import time
from pathlib import Path


class RunInProgressError(RuntimeError):
    """Another live ``kedro run`` holds the journal of the same configuration."""


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a releasing holder may have removed it)."""
    try:
        st, now = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


def _holder(fd: int) -> str:
    """Who holds a lock file: its pid and since when, for the refusal message."""
    pid = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.fstat(fd).st_mtime))
    return f"pid {pid}, since {since}"


class RunLock:
    """An exclusive ``flock`` on a run's lock file, held until :meth:`release` or the process's end.

    Within one process the lock is shared: opening the same journal again (a second session in a
    notebook) takes it over instead of refusing the process its own run.
    """

    _held: dict[str, RunLock] = {}  # this process's locks, by path

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def take(cls, path: Path) -> RunLock:
        """Lock ``path``, or raise :class:`RunInProgressError` naming the live process that holds it."""
        path = Path(path).absolute()
        held = cls._held.get(str(path))
        if held is not None and held._fd is not None:
            return held
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)  # not inherited by the processes a node starts
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunInProgressError(
                    f"another kedro run with the same configuration is running ({holder}; lock {path}); "
                    "wait for it to finish, or stop it, before running this one") from None
            if _same_file(fd, path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                cls._held[str(path)] = lock = cls(path, fd)
                return lock
            os.close(fd)  # its holder removed it between our open and lock: take the new one
        raise RunInProgressError(f"could not take the run lock {path}")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._held.pop(str(self.path), None)
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        finally:
            os.close(fd)

    @classmethod
    def release_all(cls) -> None:
        """Release every lock this process holds (registered to run at interpreter exit)."""
        for lock in list(cls._held.values()):
            with contextlib.suppress(OSError):
                lock.release()


atexit.register(RunLock.release_all)
