"""The code sandbox under load: 200 hostile programs at once through ``batch_code_reward``.

tests/rewards/test_sandbox.py attacks one program at a time; here fourteen kinds of hostile program
(fork bombs, setsid'd grandchildren, busy loops, sleepers, memory hogs, huge files, a full scratch
disk, reads of /etc/passwd and $HOME, connections to the host's loopback and to outside addresses,
writes outside the scratch dir, killing the parent, 100 MB of output) run interleaved with correct
programs through the reward's worker pool, as in one big GRPO batch. Every hostile program is
written to print the right answer *if its attack worked* (or before misbehaving), so a reward of
1 would mean a hole. Afterwards: no process and no file is left behind, the host's listener saw no
connection, and the next batch is scored normally.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from nemotron_cascade.rewards import sandbox
from nemotron_cascade.rewards.code import batch_code_reward
from nemotron_cascade.rewards.sandbox import SandboxLimits

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=2.0, memory_bytes=256 << 20, max_output_bytes=1 << 20,
                       max_file_bytes=4 << 20, scratch_bytes=16 << 20)
WORKERS = 4  # twice the cores: the pool itself is under load
N_HOSTILE, CORRECT_EVERY = 200, 4  # one correct program after every 4 hostile ones

HEADER = "import os, signal, socket, sys, time\na, b = map(int, input().split())\nANS = a + b\n"


def hostile_kinds(port: int, marker: str) -> dict[str, str]:
    """Program bodies by kind; ``ANS`` is the right answer, printed only by an attack that worked
    (or before a limit must stop the program)."""
    outside = [f"/usr/{marker}", f"/{marker}", "/sandbox/main.py", f"/etc/{marker}", f"/dev/shm/{marker}",
               f"/var/tmp/{marker}", str(ROOT / marker), f"/root/{marker}"]
    return {
        "fork_bomb": "print(ANS, flush=True)\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                     "        pass\n",
        # the main program exits at once; only a grandchild that escaped the run could print
        "setsid_grandchild": "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                             "        time.sleep(0.4)\n        print(ANS, flush=True)\n        time.sleep(60)\n"
                             "    os._exit(0)\ntime.sleep(0.1)\n",
        "busy_loop": "print(ANS, flush=True)\nwhile True:\n    pass\n",
        "sleeper": "print(ANS, flush=True)\ntime.sleep(3600)\n",
        "memory_hog": "print(ANS, flush=True)\nhog = []\nwhile True:\n    hog.append(b'x' * (32 << 20))\n",
        "huge_file": f"print(ANS, flush=True)\nwith open('/tmp/{marker}', 'wb') as f:\n"
                     "    for _ in range(200):\n        f.write(b'x' * (1 << 20))\n",
        "fill_scratch": "print(ANS, flush=True)\nfor i in range(100):\n"
                        f"    open(f'/tmp/{marker}-{{i}}', 'wb').write(b'x' * (3 << 20))\n",
        "read_passwd": "lines = open('/etc/passwd').read().splitlines()\n"
                       "assert any(l.startswith('root:') for l in lines)\nprint(ANS)\n",
        # /root holds the Python prefix (bound read-only at its own path); anything else is a leak
        "read_home": "leaked = [p for p in ('/root/.bashrc', '/root/.ssh', '/root/.cache', '/home', '/work',\n"
                     f"          {str(ROOT)!r}, {str(Path.home())!r} + '/.bash_history') if os.path.exists(p)]\n"
                     "for d, dirs, files in os.walk('/root'):\n"
                     "    dirs[:] = [x for x in dirs if not os.path.join(d, x).startswith(sys.base_prefix)]\n"
                     "    leaked += [os.path.join(d, f) for f in files]\n"
                     "assert leaked or os.listdir(os.environ['HOME'])\nprint(ANS)\n",
        "net_loopback": f"socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\nprint(ANS)\n",
        "net_external": "for host, p in (('1.1.1.1', 53), ('8.8.8.8', 443), ('pypi.org', 443)):\n"
                        "    try:\n        socket.create_connection((host, p), timeout=1).close()\n        break\n"
                        "    except OSError:\n        pass\nelse:\n    raise SystemExit(1)\nprint(ANS)\n",
        "write_outside": f"wrote = 0\nfor path in {outside!r}:\n    try:\n"
                         "        open(path, 'a').write('x')\n        wrote += 1\n    except OSError:\n        pass\n"
                         "assert wrote\nprint(ANS)\n",
        # kill the parent, pid 1 and everything else it may signal; prints only if the parent died
        "kill_parent": "ppid = os.getppid()\nfor pid in (ppid, 1, -1):\n    try:\n"
                       "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                       "time.sleep(0.2)\nassert os.getppid() != ppid\nprint(ANS)\n",
        "print_100mb": "print(ANS, flush=True)\nchunk = 'x' * (1 << 20)\nfor _ in range(100):\n"
                       "    sys.stdout.write(chunk + '\\n')\n",
    }


def fenced(body: str, variant: int) -> str:
    """A response holding the program; ``variant`` keeps each program distinct (the reward runs a
    repeated program only once)."""
    return f"Here is my solution.\n```python\n# variant {variant}\n{HEADER}{body}```\n"


def correct(variant: int) -> str:
    """A correct answer, in one of a few styles."""
    bodies = ["print(ANS)\n", "sys.stdout.write(f'{ANS}\\n')\n", "print(sum(map(int, [a, b])))\n",
              "import math\nprint(math.fsum([a, b]).__int__())\n"]
    return fenced(bodies[variant % len(bodies)], variant)


def cases_for(i: int) -> list[dict]:
    return [{"input": f"{i} {i + 3}\n", "output": f"{2 * i + 3}\n"}]


def _process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, uid, command line) of every process on the host."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        table[int(entry.name)] = (int(fields["PPid"]), int(fields["Uid"].split()[0]), cmdline)
    return table


def _sandbox_processes() -> set[int]:
    """Live processes under the sandbox uids this process hands out, wherever they are in the
    tree (a program that escaped its run would be reparented away from us)."""
    first = sandbox._UID_BASE + (os.getpid() % 100_000) * sandbox._UID_SLOTS
    return {pid for pid, (_, uid, _) in _process_table().items() if first <= uid < first + sandbox._UID_SLOTS}


def _descendants(pid: int) -> set[int]:
    table = _process_table()
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _, _) in table.items() if ppid == parent]
        found.update(children)
        frontier += children
    return found


class Listener:
    """A host server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port, self.accepted, self.stop = self.sock.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_200_hostile_programs_in_one_batch_earn_nothing_and_leave_nothing(tmp_path, monkeypatch):
    if not sandbox.sandbox_available():
        pytest.skip("bubblewrap is not available here")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # every nc-sandbox-* dir lands here
    marker = f"nc-hostile-{uuid.uuid4().hex[:12]}"
    listener = Listener()
    bystander = subprocess.Popen(["sleep", "300"])  # a host process the kill_parent programs must not reach
    kinds = hostile_kinds(listener.port, marker)
    names = list(kinds)
    responses, tests, expected, kind_of = [], [], [], []
    for i in range(N_HOSTILE):
        kind = names[i % len(names)]
        responses.append(fenced(kinds[kind], i))
        tests.append(cases_for(i))
        expected.append(0.0)
        kind_of.append(kind)
        if i % CORRECT_EVERY == CORRECT_EVERY - 1:
            responses.append(correct(1000 + i))
            tests.append(cases_for(1000 + i))
            expected.append(1.0)
            kind_of.append("correct")
    before_ours = _descendants(os.getpid())
    before_sandbox = _sandbox_processes()
    before_tmp = set(os.listdir("/tmp"))
    try:
        start = time.monotonic()
        got = batch_code_reward(responses, tests, max_workers=WORKERS, limits=LIMITS)
        hostile_s = time.monotonic() - start

        # the next "GRPO step" right after: scored normally, no slower than an unloaded batch
        start = time.monotonic()
        nxt = [correct(5000 + i) if i % 2 else fenced("print(ANS + 1)\n", 5000 + i) for i in range(16)]
        after = batch_code_reward(nxt, [cases_for(5000 + i) for i in range(16)], max_workers=WORKERS, limits=LIMITS)
        next_s = time.monotonic() - start
        assert bystander.poll() is None, "a host process was killed from inside the sandbox"
    finally:
        listener.close()
        bystander.kill()
        bystander.wait()
    print(f"\n{len(responses)} programs ({N_HOSTILE} hostile) in {hostile_s:.1f} s with {WORKERS} workers; "
          f"next batch of 16 in {next_s:.2f} s")

    wrong = [(k, i, g) for i, (k, g, e) in enumerate(zip(kind_of, got, expected)) if g != e]
    assert wrong == [], f"misjudged: {wrong}"
    assert after == [float(i % 2) for i in range(16)]
    assert listener.accepted == 0, "a sandboxed program reached the host's loopback"

    # nothing left behind: processes, scratch dirs, files in /tmp or outside the scratch dir
    time.sleep(0.2)
    assert _descendants(os.getpid()) - before_ours == set()
    assert _sandbox_processes() - before_sandbox == set()
    assert list(scratch.iterdir()) == []
    assert [n for n in set(os.listdir("/tmp")) - before_tmp if marker in n] == []
    for path in (Path("/usr") / marker, Path("/") / marker, Path("/etc") / marker, Path("/dev/shm") / marker,
                 Path("/var/tmp") / marker, ROOT / marker, Path("/root") / marker, Path("/sandbox")):
        assert not path.exists(), path
    assert hostile_s < 90
