"""Hostile programs stay contained: limits hold, the host is invisible, nothing outlives a run.

Every test runs real programs under bubblewrap (without it they fail with SandboxUnavailableError,
whose message says how to install it). Limits are tightened so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from nemotron_cascade.rewards import sandbox
from nemotron_cascade.rewards.code import code_reward
from nemotron_cascade.rewards.sandbox import (
    SandboxLimits,
    SandboxUnavailableError,
    run_program,
)

FAST = SandboxLimits(cpu_seconds=1, wall_seconds=2.0)
ECHO_TESTS = [{"input": "hello\n", "output": "hello\n"}]
ECHO = "print(input())\n"


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) for every process on the host."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def _descendants(pid: int) -> list[int]:
    """Live descendants of ``pid``."""
    table = _process_table()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in table.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _with_token(token: str) -> list[int]:
    """Processes whose command line contains ``token``."""
    return [pid for pid, (_, cmdline) in _process_table().items() if token in cmdline]


def _eventually_empty(probe, seconds: float = 2.0) -> list:
    """Poll ``probe()`` until it returns an empty list or time runs out; return the last value."""
    deadline = time.monotonic() + seconds
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """After every test, nothing the test started is still alive."""
    before = set(_descendants(os.getpid()))  # e.g. the math verifier's worker pool from other tests
    yield
    assert _eventually_empty(lambda: sorted(set(_descendants(os.getpid())) - before)) == []


def _tagged(token: str, body: str) -> str:
    """A program that re-executes itself with ``token`` in its argv, so the host can find it."""
    return (
        "import os, sys\n"
        "if len(sys.argv) < 2:\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', open(sys.argv[0]).read(), {token!r}])\n"
        + body
    )


# --- limits -------------------------------------------------------------------------------------


def test_trivial_program_runs() -> None:
    """The baseline: stdin in, stdout out, clean exit."""
    result = run_program(ECHO, "hello\n", FAST)
    assert (result.stdout, result.returncode, result.reason) == ("hello\n", 0, None)
    assert result.ok


def test_infinite_loop_hits_the_cpu_limit() -> None:
    """A busy loop after the right answer is killed by RLIMIT_CPU and earns 0."""
    start = time.monotonic()
    result = run_program("print('hello', flush=True)\nwhile True: pass\n", "", FAST)
    assert result.reason == "cpu time limit exceeded" and not result.timed_out
    assert time.monotonic() - start < FAST.wall_seconds + 1
    assert code_reward(f"```python\n{ECHO}while True: pass\n```", ECHO_TESTS, limits=FAST) == 0.0


def test_sleeping_program_hits_the_wall_limit() -> None:
    """A program that burns no CPU still stops at the wall-clock limit."""
    start = time.monotonic()
    result = run_program("import time\ntime.sleep(60)\n", "", FAST)
    elapsed = time.monotonic() - start
    assert result.timed_out and result.reason == "wall-clock limit exceeded"
    assert FAST.wall_seconds - 0.1 < elapsed < FAST.wall_seconds + 1


def test_fork_flood_is_contained() -> None:
    """Forking without end ends with the run; no process survives and the reward is 0."""
    token = f"forkflood-{uuid.uuid4().hex}"
    body = (
        "print(input(), flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    start = time.monotonic()
    reward = code_reward(f"```python\n{_tagged(token, body)}```", ECHO_TESTS, limits=FAST)
    assert reward == 0.0
    assert time.monotonic() - start < FAST.wall_seconds + 2
    assert _with_token(token) == [], "run_program returned before the flood was dead"


def _kernel_at_least(major: int, minor: int) -> bool:
    """True when the running Linux kernel is at least ``major.minor``."""
    numbers = [int(n) for n in platform.release().split("-")[0].split(".")[:2]]
    return tuple(numbers) >= (major, minor)


@pytest.mark.skipif(
    os.geteuid() != 0 and not _kernel_at_least(5, 14),
    reason="as an ordinary user RLIMIT_NPROC counts per user namespace only since Linux 5.14",
)
def test_process_count_is_capped() -> None:
    """RLIMIT_NPROC counts this run's processes only, and stops forking at max_processes."""
    program = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(n)\n"
    )
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=3.0, max_processes=8)
    result = run_program(program, "", limits)
    assert result.ok, result.reason
    assert int(result.stdout) < limits.max_processes


def test_memory_bomb_is_stopped() -> None:
    """Allocating past the address-space limit fails inside the program, not on the host."""
    program = "print(input(), flush=True)\nhog = []\nwhile True:\n    hog.append(bytearray(50 << 20))\n"
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=4.0, memory_bytes=256 << 20)
    result = run_program(program, "hello\n", limits)
    assert result.returncode == 1 and "MemoryError" in result.stderr
    assert code_reward(f"```python\n{program}```", ECHO_TESTS, limits=limits) == 0.0


def test_detached_grandchild_dies_with_the_run() -> None:
    """A double-forked, setsid()'d sleeper does not outlive the run nor hold its pipes open."""
    token = f"detached-{uuid.uuid4().hex}"
    program = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
        "    os._exit(0)\n"
        "import time\n"
        "time.sleep(0.3)\n"  # let the sleeper start
        "print(input())\n"
    )
    start = time.monotonic()
    result = run_program(program, "hello\n", SandboxLimits(cpu_seconds=1, wall_seconds=4.0))
    assert result.ok and result.stdout == "hello\n"
    assert time.monotonic() - start < 2.0, "the sleeper kept the output pipe open"
    assert _with_token(token) == [], "the detached sleeper outlived the run"


def test_sandbox_dies_with_its_caller() -> None:
    """If the process that started a run is SIGKILLed mid-run, the program dies with it."""
    token = f"orphan-{uuid.uuid4().hex}"
    caller_code = (  # the token travels in the environment so the caller's own argv lacks it
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_sandbox import _tagged\n"
        "from nemotron_cascade.rewards.sandbox import run_program, SandboxLimits\n"
        "program = _tagged(os.environ['NC_TOKEN'], 'import time; time.sleep(60)')\n"
        "run_program(program, '', SandboxLimits(wall_seconds=30))\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", caller_code], env={**os.environ, "NC_TOKEN": token})
    try:
        deadline = time.monotonic() + 10
        while not _with_token(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _with_token(token), "the sandboxed program never started"
        assert caller.poll() is None
    finally:
        caller.kill()
        caller.wait()
    assert _eventually_empty(lambda: _with_token(token)) == []


def test_output_flood_is_truncated() -> None:
    """Endless output is cut at max_output_bytes, fails the run, and earns 0."""
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=4.0, max_output_bytes=64 << 10)
    program = "print(input(), flush=True)\nwhile True:\n    print('x' * 1000)\n"
    start = time.monotonic()
    result = run_program(program, "hello\n", limits)
    assert result.output_truncated and result.reason == "output limit exceeded"
    assert len(result.stdout.encode()) <= limits.max_output_bytes
    assert time.monotonic() - start < 2.0, "the flood was not stopped when the limit was reached"
    assert code_reward(f"```python\n{program}```", ECHO_TESTS, limits=limits) == 0.0


@pytest.mark.parametrize(
    ("program", "expected", "reason"),
    [
        (
            "open('/tmp/big', 'wb').write(b'x' * (4 << 20))",
            "File too large",
            "one file beyond max_file_bytes (RLIMIT_FSIZE)",
        ),
        (
            "for i in range(64):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 20))",
            "No space left on device",
            "many files beyond the scratch size",
        ),
    ],
)
def test_disk_fill_is_stopped(program: str, expected: str, reason: str) -> None:
    """Writing more than the file-size or scratch limits fails with the matching error."""
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=4.0, max_file_bytes=2 << 20, scratch_bytes=8 << 20)
    wrapped = f"try:\n    {program.replace(chr(10), chr(10) + '    ')}\nexcept OSError as e:\n    print(e.strerror)\n"
    result = run_program(wrapped, "", limits)
    assert result.ok, reason
    assert result.stdout.strip() == expected, reason


# --- isolation ----------------------------------------------------------------------------------


def test_network_is_unreachable() -> None:
    """A server listening on the host's loopback cannot be reached; DNS does not resolve."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1); print('connected')\n"
            "except OSError:\n"
            "    print('refused')\n"
            "try:\n"
            "    socket.getaddrinfo('pypi.org', 443); print('resolved')\n"
            "except OSError:\n"
            "    print('unresolved')\n"
        )
        result = run_program(program, "", FAST)
    assert result.stdout.split() == ["refused", "unresolved"]


def test_host_files_are_invisible(tmp_path: Path) -> None:
    """The project, the test's files, the virtualenv and /root are out of sight."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    paths = [str(secret), __file__, str(Path(__file__).resolve().parents[2]), "/root/.ssh", "/etc/passwd", "/work"]
    program = "import os\n" + "".join(f"print(os.path.exists({p!r}))\n" for p in paths)
    result = run_program(program, "", FAST)
    assert result.ok, result.stderr
    assert result.stdout.split() == ["False"] * len(paths)


def test_environment_is_empty_of_host_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables of the parent do not reach the program; only the sandbox's own are set."""
    monkeypatch.setenv("NC_TEST_SECRET", "hunter2-token")
    result = run_program("import json, os\nprint(json.dumps(dict(os.environ)))\n", "", FAST)
    assert result.ok, result.stderr
    assert "hunter2" not in result.stdout
    seen = json.loads(result.stdout)
    assert seen.items() >= sandbox.SANDBOX_ENV.items()
    assert set(seen) <= set(sandbox.SANDBOX_ENV) | {"PWD"}


def test_writes_outside_the_scratch_dir_do_not_reach_the_host(tmp_path: Path) -> None:
    """Writing to the host's paths lands in the private tmpfs or fails; read-only binds stay so."""
    target = tmp_path / "pwned"
    program = (
        "import os\n"
        f"os.makedirs({str(tmp_path)!r}, exist_ok=True)\n"
        f"open({str(target)!r}, 'w').write('x')\n"  # succeeds, but inside the sandbox's /tmp
        "for path in ('/usr/pwned', '/sandbox/main.py', '/pwned', '/dev/pwned', '/dev/shm/pwned'):\n"
        "    try:\n"
        "        open(path, 'a').write('x'); print('wrote', path)\n"
        "    except OSError:\n"
        "        print('denied')\n"
    )
    result = run_program(program, "", FAST)
    assert result.ok, result.stderr
    assert result.stdout.split() == ["denied"] * 5
    assert not target.exists()
    assert not Path("/usr/pwned").exists()


def test_killing_the_parent_does_not_reach_the_host() -> None:
    """SIGKILL to the parent, to pid 1 and to every process it may signal stays in the sandbox."""
    bystander = subprocess.Popen(["sleep", "30"])  # a host process of the test's own user
    try:
        program = (
            "import os, signal\n"
            "for pid in (os.getppid(), 1, -1):\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n"
            "print(input())\n"
        )
        result = run_program(program, "hello\n", FAST)
        assert result.ok and result.stdout == "hello\n"
        assert bystander.poll() is None, "a host process was killed from inside the sandbox"
    finally:
        bystander.kill()
        bystander.wait()


def test_program_runs_as_main_with_the_standard_library_only() -> None:
    """``__main__``, argv and exit() as in a script; no site-packages or script folder on sys.path;
    str hashes reproducible across runs (PYTHONHASHSEED=0)."""
    program = (
        "import json, sys\n"
        "if __name__ == '__main__':\n"
        "    print(json.dumps([sys.argv, __file__, sys.path, hash('nemotron')]))\n"
        "    exit(0)\n"
    )
    first, second = run_program(program, "", FAST), run_program(program, "", FAST)
    assert first.ok, first.stderr
    argv, file, path, _ = json.loads(first.stdout)
    assert argv == [file] == [sandbox.SANDBOX_PROGRAM_PATH]
    assert not [p for p in path if "site-packages" in p or p in ("", "/sandbox")]
    assert first.stdout == second.stdout


def test_large_stdin_is_fed_completely() -> None:
    """Input larger than a pipe buffer reaches the program whole."""
    data = "x" * (5 << 20) + "\n"
    result = run_program("import sys\nprint(len(sys.stdin.read()))\n", data, FAST)
    assert result.stdout.strip() == str(len(data))


# --- without bubblewrap -------------------------------------------------------------------------


def test_missing_bwrap_refuses_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bwrap and no opt-out: a clear error naming the installer, nothing runs."""
    monkeypatch.setattr(sandbox, "_find_bwrap", lambda: None)
    monkeypatch.delenv(sandbox.UNSAFE_ENV_VAR, raising=False)
    with pytest.raises(SandboxUnavailableError, match="install_system_deps.sh"):
        run_program(ECHO, "hello\n", FAST)
    with pytest.raises(SandboxUnavailableError, match="apt-get install"):
        code_reward(f"```python\n{ECHO}```", ECHO_TESTS)


def test_unsafe_opt_out_runs_with_rlimits_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With NEMOTRON_CASCADE_UNSAFE_SANDBOX=1 programs run unisolated, rlimits on, one warning."""
    monkeypatch.setattr(sandbox, "_find_bwrap", lambda: None)
    monkeypatch.setenv(sandbox.UNSAFE_ENV_VAR, "1")
    sandbox._warn_unsafe_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger=sandbox.__name__):
        assert run_program(ECHO, "hello\n", FAST).stdout == "hello\n"
        assert run_program("while True: pass\n", "", FAST).reason == "cpu time limit exceeded"
    warnings = [r for r in caplog.records if "WITHOUT isolation" in r.getMessage()]
    assert len(warnings) == 1


def test_scratch_dirs_of_killed_runs_are_swept(tmp_path) -> None:
    """A run SIGKILLed mid-way cannot remove its scratch dir; the next process's first run does,
    and only the dirs whose pid is gone."""
    from nemotron_cascade.rewards.sandbox import sweep_stale_workdirs

    dead = tmp_path / "nc-sandbox-999999999-abc"
    alive = tmp_path / f"nc-sandbox-{os.getpid()}-def"
    other = tmp_path / "nc-sandbox-notapid"
    for d in (dead, alive, other):
        d.mkdir()
        (d / "main.py").write_text("print(1)")
    assert sweep_stale_workdirs.__wrapped__(str(tmp_path)) == 1
    assert not dead.exists() and alive.exists() and other.exists()
