"""Run an untrusted Python program on one stdin and capture its output, contained.

The container is bubblewrap (``bwrap``): fresh PID, network, IPC and UTS namespaces; an empty
read-only root with read-only binds of ``/usr`` (plus the ``/bin``-style links) and the Python
installation prefix; a small private ``/tmp`` (tmpfs: the scratch dir, the working directory and the
only writable place); a fresh ``/proc`` and a minimal read-only ``/dev``; an empty environment. The
program never sees the project, the virtualenv, ``/root`` or the host's environment variables, and
every process it starts dies with the PID namespace when the main program exits or is killed.

Inside the container a tiny launcher applies the rlimits (CPU seconds, address space, file size,
open files, processes, no core dumps) and then runs the program as ``__main__`` in the same
interpreter, which sees the standard library only. ``RLIMIT_NPROC`` never binds
uid 0 and counts per user (see FACTS), so it needs care to cap fork floods at ``max_processes``:

* host process is root: bwrap runs without a user namespace and keeps only ``CAP_SETUID`` and
  ``CAP_SETGID`` for the launcher, which drops to a fresh unprivileged uid per concurrent run;
* ordinary user: bwrap makes a user namespace (``--unshare-all``), and since Linux 5.14 the
  process count of a user namespace is its own, so the limit counts this run only.

The PID namespace and the wall-clock kill remain the backstop; cgroups are not used.

Without bwrap, :func:`run_program` raises :class:`SandboxUnavailableError` unless the user opted
out with ``NEMOTRON_CASCADE_UNSAFE_SANDBOX=1``: then programs run with the rlimits only (they can
read host files and reach the network; as root they still drop to an unprivileged uid when the
interpreter is reachable by other users) and a warning is logged once.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nemotron_cascade.rewards import sandbox_io

logger = logging.getLogger(__name__)

UNSAFE_ENV_VAR = "NEMOTRON_CASCADE_UNSAFE_SANDBOX"
INSTALL_HINT = (
    "bubblewrap (the `bwrap` binary) is required to run model-written programs safely. Install it "
    "with `bash scripts/install_system_deps.sh` (or `make setup`, or `sudo apt-get install "
    "bubblewrap`). To run programs WITHOUT isolation (rlimits only: they can read your files and "
    f"reach the network) set {UNSAFE_ENV_VAR}=1."
)

SANDBOX_PROGRAM_PATH = "/sandbox/main.py"
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
# The interpreter runs the launcher, which then runs the program in the same process:
# -S: no site-packages at all (only the standard library, whatever the host installed; and no .pth
# code, which costs tens of milliseconds per run); -s: no user site; -P: no script folder or cwd on
# sys.path; -B: no .pyc files. Not -I/-E, which would ignore PYTHONHASHSEED (the environment is ours).
INTERPRETER_FLAGS = ("-S", "-s", "-P", "-B")
_UID_BASE = 1_500_000_000  # far above any real account
_UID_SLOTS = 1_000

# The launcher runs inside the container: rlimits, then the uid drop (root only), then the program
# as ``__main__`` in the same interpreter (exit()/quit() restored, as -S leaves them out).
# A negative nproc leaves RLIMIT_NPROC alone; a negative uid keeps the current uid.
_LAUNCHER = r"""
import os, resource, site, sys
cpu, mem, fsize, nofile, nproc, uid = map(int, sys.argv[1:7])
limits = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_CPU, cpu, cpu + 1),
          (resource.RLIMIT_AS, mem, mem), (resource.RLIMIT_FSIZE, fsize, fsize),
          (resource.RLIMIT_NOFILE, nofile, nofile)]
if nproc >= 0:
    limits.append((resource.RLIMIT_NPROC, nproc, nproc))
for which, soft, hard in limits:
    resource.setrlimit(which, (soft, hard))
if uid >= 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
site.setquit()
def _run(program):
    with open(program, encoding="utf-8") as source:
        code = compile(source.read(), program, "exec")
    sys.argv[:] = [program]
    main = sys.modules["__main__"].__dict__
    keep = {k: main[k] for k in ("__name__", "__builtins__", "__loader__", "__spec__") if k in main}
    main.clear()
    main.update(keep, __file__=program, __doc__=None, __package__=None)
    exec(code, main)
_run(sys.argv[7])
"""


class SandboxUnavailableError(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one program run."""

    cpu_seconds: int = 2
    wall_seconds: float = 5.0
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS)
    max_processes: int = 32  # RLIMIT_NPROC for this run's processes and threads (see module doc)
    max_output_bytes: int = 1 << 20  # stdout beyond this is truncated and counts as a failure
    max_file_bytes: int = 16 << 20  # RLIMIT_FSIZE, per file
    max_open_files: int = 64
    scratch_bytes: int = 64 << 20  # size of the private /tmp


@dataclass(frozen=True)
class RunResult:
    """What a program did: its output, and why it stopped (``reason``: ``None`` when clean)."""

    stdout: str
    stderr: str
    returncode: int | None  # negative: killed by that signal (as in :mod:`subprocess`)
    timed_out: bool
    output_truncated: bool
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the program exited 0 within every limit."""
        return self.reason is None


_WORKDIR_PREFIX = "nc-sandbox-"


@functools.lru_cache(maxsize=1)
def sweep_stale_workdirs(tmp: str | None = None) -> int:
    """Remove the scratch dirs of runs whose process died without cleaning up (SIGKILL); once per
    process. A dir is named ``nc-sandbox-<pid>-…``: it is stale when that pid no longer exists."""
    removed = 0
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*-*"):
        pid = path.name[len(_WORKDIR_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        logger.info("sandbox: removed %d scratch dirs left by killed runs", removed)
    return removed


def run_program(source: str, stdin: str, limits: SandboxLimits = SandboxLimits()) -> RunResult:
    """Run the Python ``source`` with ``stdin`` in the sandbox and return what it did."""
    bwrap = _sandbox_backend()
    may_drop_uid = bwrap is not None or _world_executable(_interpreter())
    sweep_stale_workdirs()
    with (
        tempfile.TemporaryDirectory(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-") as workdir,
        _sandbox_uid(may_drop_uid) as uid,
    ):
        program = Path(workdir) / "main.py"
        program.write_text(source, encoding="utf-8")
        program.chmod(0o644)
        if bwrap is None:
            os.chmod(workdir, 0o1777)  # the unsafe fallback uses it as the scratch dir
            command, cwd = _direct_command(str(program), limits, uid), workdir
        else:
            command, cwd = _bwrap_command(bwrap, str(program), limits, uid), None
        return _execute(command, cwd, stdin.encode("utf-8"), limits, is_bwrap=bwrap is not None)


def sandbox_available() -> bool:
    """True when bubblewrap is installed and works here (no fallback counted)."""
    bwrap = _find_bwrap()
    if bwrap is None:
        return False
    try:
        _probe_bwrap(bwrap)
    except SandboxUnavailableError:
        return False
    return True


# --- choosing the backend ------------------------------------------------------------------------


def _find_bwrap() -> str | None:
    """Path of the bwrap binary, or ``None``."""
    return shutil.which("bwrap") or next(
        (p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None
    )


def _sandbox_backend() -> str | None:
    """The bwrap path to use, ``None`` for the opted-in unsafe fallback; raise if neither."""
    bwrap = _find_bwrap()
    if bwrap is not None:
        _probe_bwrap(bwrap)
        return bwrap
    if os.environ.get(UNSAFE_ENV_VAR) == "1":
        _warn_unsafe_once()
        return None
    raise SandboxUnavailableError(INSTALL_HINT)


@functools.cache
def _warn_unsafe_once() -> None:
    """Log, once per process, that programs run without isolation."""
    logger.warning(
        "%s=1 and bubblewrap is missing: model-written programs run WITHOUT isolation (rlimits "
        "only; they can read host files and use the network%s). Install bubblewrap to sandbox "
        "them.",
        UNSAFE_ENV_VAR,
        ", AS ROOT since the interpreter is private to root"
        if os.geteuid() == 0 and not _world_executable(_interpreter())
        else "",
    )


@functools.cache
def _probe_bwrap(bwrap: str) -> None:
    """Start one trivial sandbox (once per process); raise a clear error when bwrap cannot."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="nc-probe-") as program:
        program.write("pass\n")
        program.flush()
        os.chmod(program.name, 0o644)
        command = _bwrap_command(bwrap, program.name, SandboxLimits(), uid=-1)
        proc = subprocess.run(command, input=b"", capture_output=True, timeout=30, env=SANDBOX_ENV)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise SandboxUnavailableError(
            f"bubblewrap ({bwrap}) is installed but cannot create a sandbox here: {detail!r}. "
            "Unprivileged user namespaces may be disabled (e.g. Ubuntu's "
            "kernel.apparmor_restrict_unprivileged_userns=1); run as root or allow them. "
            + INSTALL_HINT
        )


# --- per-run unprivileged uid (root hosts only) --------------------------------------------------


class _UidPool:
    """Hands each concurrent run its own unprivileged uid, so RLIMIT_NPROC counts that run only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: set[int] = set()

    def acquire(self) -> int:
        """Reserve the lowest free slot and return its uid."""
        with self._lock:
            slot = next(i for i in range(_UID_SLOTS + 1) if i not in self._in_use)
            if slot == _UID_SLOTS:
                raise RuntimeError(f"more than {_UID_SLOTS} concurrent sandboxes")
            self._in_use.add(slot)
        return _UID_BASE + (os.getpid() % 100_000) * _UID_SLOTS + slot

    def release(self, uid: int) -> None:
        """Free the slot of ``uid``."""
        with self._lock:
            self._in_use.discard((uid - _UID_BASE) % _UID_SLOTS)


_UID_POOL = _UidPool()


@contextmanager
def _sandbox_uid(may_drop: bool = True) -> Iterator[int]:
    """A fresh uid to drop to when running as root (and ``may_drop``), else -1 (no drop)."""
    if os.geteuid() != 0 or not may_drop:
        yield -1
        return
    uid = _UID_POOL.acquire()
    try:
        yield uid
    finally:
        _UID_POOL.release(uid)


def _world_executable(path: str) -> bool:
    """True when any user may execute ``path`` (every folder above it searchable by others)."""
    folders = Path(path).parents
    return os.stat(path).st_mode & 0o001 != 0 and all(os.stat(d).st_mode & 0o001 for d in folders)


# --- building the command ------------------------------------------------------------------------


def _interpreter() -> str:
    """The base Python interpreter (a virtualenv's python lives outside the sandbox)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return os.path.realpath(candidate if candidate.exists() else sys.executable)


def _launcher_args(program: str, limits: SandboxLimits, uid: int, nproc: int) -> list[str]:
    """``python -S ... -c LAUNCHER ...``: apply the rlimits, drop the uid, run the program."""
    python = _interpreter()
    numbers = (
        limits.cpu_seconds,
        limits.memory_bytes,
        limits.max_file_bytes,
        limits.max_open_files,
        nproc,
        uid,
    )
    return [python, *INTERPRETER_FLAGS, "-c", _LAUNCHER, *map(str, numbers), program]


def _direct_command(program: str, limits: SandboxLimits, uid: int) -> list[str]:
    """The unsafe fallback: the launcher alone, on the host.

    RLIMIT_NPROC only when dropping to a per-run uid: for the host user it would count every
    process that user runs.
    """
    return _launcher_args(program, limits, uid, limits.max_processes if uid >= 0 else -1)


def _bwrap_command(bwrap: str, program: str, limits: SandboxLimits, uid: int) -> list[str]:
    """The full bwrap command line running the launcher on ``program`` inside the container."""
    return [
        bwrap,
        *_namespace_args(),
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *[arg for key, value in SANDBOX_ENV.items() for arg in ("--setenv", key, value)],
        *_filesystem_args(),
        "--perms", "0755", "--dir", os.path.dirname(SANDBOX_PROGRAM_PATH),
        "--ro-bind", program, SANDBOX_PROGRAM_PATH,
        "--perms", "1777", "--size", str(limits.scratch_bytes), "--tmpfs", "/tmp",
        "--proc", "/proc",
        "--dev", "/dev",
        "--remount-ro", "/dev",  # device nodes stay usable; no files in /dev or /dev/shm
        "--remount-ro", "/",  # the root tmpfs: /tmp is the only writable place
        "--chdir", "/tmp",
        "--",
        *_launcher_args(SANDBOX_PROGRAM_PATH, limits, uid, limits.max_processes),
    ]  # fmt: skip


def _namespace_args() -> list[str]:
    """Namespaces and capabilities: see the module docstring for why root differs."""
    if os.geteuid() != 0:
        return ["--unshare-all"]  # user, pid, net, ipc, uts, cgroup; bwrap drops all caps
    return [
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
    ]  # fmt: skip


def _filesystem_args() -> list[str]:
    """Read-only system dirs (links kept as links) and the Python prefix at its own path."""
    args: list[str] = []
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    prefix = os.path.realpath(sys.base_prefix)
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        for parent in reversed(Path(prefix).parents[:-1]):  # mount points readable by any uid
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    return args


# --- running and collecting output ---------------------------------------------------------------


def _execute(
    command: list[str], cwd: str | None, stdin: bytes, limits: SandboxLimits, is_bwrap: bool
) -> RunResult:
    """Start ``command`` in its own session, exchange I/O within the limits, then kill its group."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=SANDBOX_ENV,
        start_new_session=True,
        close_fds=True,
    )
    try:
        stdout, stderr, timed_out, truncated = sandbox_io.exchange(proc, stdin, limits)
    finally:
        sandbox_io.kill_and_reap(proc)
    returncode = _normalise_returncode(proc.returncode, is_bwrap)
    return RunResult(
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        returncode=returncode,
        timed_out=timed_out,
        output_truncated=truncated,
        reason=_reason(returncode, timed_out, truncated),
    )


def _normalise_returncode(returncode: int | None, is_bwrap: bool) -> int | None:
    """bwrap reports a child killed by signal N as 128 + N; map it to -N like subprocess."""
    if is_bwrap and returncode is not None and 128 < returncode < 128 + 65:
        return -(returncode - 128)
    return returncode


def _reason(returncode: int | None, timed_out: bool, truncated: bool) -> str | None:
    """Why a run failed, in words; ``None`` when it exited 0 within every limit."""
    if truncated:
        return "output limit exceeded"
    if timed_out:
        return "wall-clock limit exceeded"
    if returncode == -signal.SIGXCPU:
        return "cpu time limit exceeded"
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    if returncode:
        return f"exit status {returncode}"
    return None
