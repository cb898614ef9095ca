"""I/O faults while saving: the previous version stays whole and loadable, and nothing half-written
becomes visible as data.

Beyond tests/datasets (tokenizer save raising, a schema error mid-save): a read-only target (for
real: as root the test thread drops CAP_DAC_OVERRIDE, so the permission bits apply), ENOSPC after
part of the weights are on disk, a failing rename, the leftovers of a SIGKILLed checkpoint save, a
JSON-lines writer SIGKILLed mid-write in another process, a write failing with ENOSPC, and the
file mode an atomic save leaves (``mkstemp`` made every data file 0600).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kedro.io.core import DatasetError, Version

from nemotron_cascade.datasets import Checkpoint, CheckpointDataset, JsonlDataset

V1, V2 = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"
ROOT = Path(__file__).resolve().parents[2]


# -- a real read-only directory, also for root -------------------------------------------------------

class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_DAC_CAPS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


@contextlib.contextmanager
def _without_dac_override():
    """Drop root's permission-bypass capabilities from this thread's effective set (restored after)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("capget failed: cannot drop CAP_DAC_OVERRIDE")
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_CAPS
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("capset failed: cannot drop CAP_DAC_OVERRIDE")
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0, "could not restore capabilities"


@contextlib.contextmanager
def read_only(directory: Path):
    mode = directory.stat().st_mode & 0o7777
    directory.chmod(0o555)
    try:
        with _without_dac_override():
            probe = directory / ".probe"
            try:
                probe.touch()
            except PermissionError:
                pass
            else:
                probe.unlink()
                pytest.skip("the directory stays writable for this user")
            yield
    finally:
        directory.chmod(mode)


# -- checkpoints ------------------------------------------------------------------------------------

def _ckpt(root: Path, save=None, load=None) -> CheckpointDataset:
    return CheckpointDataset(str(root / "policy"), version=Version(load, save))


@pytest.fixture()
def saved_v1(tmp_path, tiny):
    model, tok = tiny
    _ckpt(tmp_path, save=V1).save(Checkpoint(model, tok, {"stage": "v1"}))
    return tmp_path


def _assert_only_v1(root: Path) -> None:
    ds = _ckpt(root)
    assert ds._get_versions() == [str(root / "policy" / V1 / "policy")]  # what "latest" chooses from
    assert ds.load().lineage["stage"] == "v1"
    assert sorted(p.name for p in (root / "policy").iterdir()) == [V1]  # no empty or partial V2 directory
    assert sorted(p.name for p in (root / "policy" / V1).iterdir()) == ["policy"]
    with pytest.raises(DatasetError, match=f"no checkpoint at .*{V2}"):  # --load-versions=policy:V2
        _ckpt(root, load=V2).load()


def test_save_into_a_read_only_target_fails_and_v1_stays(saved_v1, tiny):
    model, tok = tiny
    with read_only(saved_v1 / "policy"):
        with pytest.raises(DatasetError) as err:
            _ckpt(saved_v1, save=V2).save(Checkpoint(model, tok, {"stage": "v2"}))
    assert isinstance(err.value.__cause__, PermissionError)
    assert f"Permission denied: '{saved_v1 / 'policy' / V2}'" in str(err.value)  # names what it could not create
    _assert_only_v1(saved_v1)


def test_enospc_after_part_of_the_weights_leaves_no_version(saved_v1, tiny, monkeypatch):
    model, tok = tiny
    written = []

    def partial_save(directory, *a, **k):
        (Path(directory) / "config.json").write_text("{}")
        (Path(directory) / "model.safetensors").write_bytes(b"\0" * 4096)  # a torn weights file
        written.append(directory)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save_pretrained", partial_save)
    with pytest.raises(DatasetError, match="No space left on device") as err:
        _ckpt(saved_v1, save=V2).save(Checkpoint(model, tok, {"stage": "v2"}))
    monkeypatch.undo()
    assert err.value.__cause__.errno == errno.ENOSPC and written  # the fault happened mid-save, and surfaced
    assert not Path(written[0]).exists()
    _assert_only_v1(saved_v1)


def test_a_failing_rename_leaves_no_version(saved_v1, tiny, monkeypatch):
    model, tok = tiny
    real_replace = os.replace

    def failing_replace(src, dst, *a, **k):
        if Path(dst).name == "policy":
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(DatasetError, match="Input/output error"):
        _ckpt(saved_v1, save=V2).save(Checkpoint(model, tok, {"stage": "v2"}))
    monkeypatch.undo()
    _assert_only_v1(saved_v1)


def test_the_leftovers_of_a_killed_checkpoint_save_are_invisible(saved_v1, tiny):
    """SIGKILL mid-save leaves ``<version>/.policy.tmp-<pid>/`` with some files: never loaded."""
    model, tok = tiny
    leftover = saved_v1 / "policy" / V2 / ".policy.tmp-4242"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{}")
    (leftover / "model.safetensors").write_bytes(b"\0" * 100)
    ds = _ckpt(saved_v1)
    assert ds._get_versions() == [str(saved_v1 / "policy" / V1 / "policy")]
    assert ds.load().lineage["stage"] == "v1"
    with pytest.raises(DatasetError, match="no checkpoint at"):
        _ckpt(saved_v1, load=V2).load()
    # a later save (another version) is unaffected and becomes the latest
    v3 = "2026-01-03T00.00.00.000Z"
    _ckpt(saved_v1, save=v3).save(Checkpoint(model, tok, {"stage": "v3"}))
    assert _ckpt(saved_v1).load().lineage["stage"] == "v3"


# -- JSON lines -------------------------------------------------------------------------------------

def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "domain": "math", "split": "sft", "prompt": f"{i} + 1?", "answer": str(i + 1)}
            for i in range(n)]


_WRITER = textwrap.dedent("""
    import sys
    from nemotron_cascade.datasets import JsonlDataset

    def rows():  # endless rows, slowly enough that the parent sees the temporary file grow
        i = 0
        while True:
            yield {"id": f"new{i}", "domain": "math", "split": "sft", "prompt": "x" * 1000, "answer": "1"}
            i += 1

    JsonlDataset(sys.argv[1], schema="task.math").save(rows())
""")


def test_a_jsonl_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "tasks.jsonl"
    old = _rows(50)
    JsonlDataset(str(path), schema="task.math").save(old)
    before = path.read_bytes()

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            if temps and temps[0].stat().st_size > 4 * 2**20:  # mid-write: megabytes in the temporary file
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert path.read_bytes() == before
    assert JsonlDataset(str(path), schema="task.math").load() == old
    # the torn temporary file stays (a SIGKILL runs no cleanup) but is hidden and never read as data
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert leftovers and all(n.startswith(".tasks.jsonl.") and n.endswith(".tmp") for n in leftovers)
    # a versioned dataset does not take it for a version either, and the next save works
    JsonlDataset(str(path), schema="task.math").save(old[:3])
    assert JsonlDataset(str(path), schema="task.math").load() == old[:3]


def test_a_versioned_jsonl_ignores_a_killed_writers_leftover(tmp_path):
    ds = JsonlDataset(str(tmp_path / "t.jsonl"), schema="task.math", version=Version(None, V1))
    ds.save(_rows(2))
    torn = tmp_path / "t.jsonl" / V2 / ".t.jsonl.abc123.tmp"
    torn.parent.mkdir(parents=True)
    torn.write_text(json.dumps(_rows(1)[0])[:20])
    latest = JsonlDataset(str(tmp_path / "t.jsonl"), schema="task.math", version=Version(None, None))
    assert latest.resolve_load_version() == V1 and latest.load() == _rows(2)


class _FullDisk:
    """A text file object whose writes fail with ENOSPC after ``room`` characters."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, text: str) -> int:
        if len(text) > self._room:
            self._f.write(text[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(text)
        return self._f.write(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_a_jsonl_write_failing_with_enospc_keeps_the_old_file(tmp_path, monkeypatch):
    import nemotron_cascade.datasets.jsonl as jsonl_module

    path = tmp_path / "t.jsonl"
    JsonlDataset(str(path), schema="task.math").save(_rows(5))
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(jsonl_module.os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k), 300))
    with pytest.raises(DatasetError, match="No space left on device") as err:
        JsonlDataset(str(path), schema="task.math").save(_rows(100))
    monkeypatch.undo()
    assert err.value.__cause__.errno == errno.ENOSPC
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]


def test_a_jsonl_save_into_a_read_only_directory_keeps_the_old_file(tmp_path):
    path = tmp_path / "d" / "t.jsonl"
    JsonlDataset(str(path), schema="task.math").save(_rows(3))
    before = path.read_bytes()
    with read_only(path.parent):
        with pytest.raises(DatasetError, match=f"Permission denied: '{path.parent}/"):
            JsonlDataset(str(path), schema="task.math").save(_rows(9))
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["t.jsonl"]


def test_an_atomic_save_keeps_ordinary_file_modes(tmp_path):
    """``mkstemp`` creates 0600 files: renamed into place they were unreadable to the group (every
    file under data/ was 0600). A new file now gets the umask's mode, a rewritten one keeps its own."""
    path = tmp_path / "t.jsonl"
    mask = os.umask(0o022)
    os.umask(mask)
    JsonlDataset(str(path)).save([{"a": 1}])
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o640)
    JsonlDataset(str(path)).save([{"a": 2}])
    assert path.stat().st_mode & 0o777 == 0o640
