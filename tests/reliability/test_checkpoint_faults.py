"""What a killed, failed or mis-pinned checkpoint save or load leaves behind, and what the user reads
(issue: faults, scenarios 4, 5, 6, 7 and 9).

4. A save SIGKILLed before its rename left ``<stage>/<version>/.<stage>.tmp-<pid>/`` for ever, and
   ``python -m nemotron_cascade.lineage <stage>`` exited 2 while it was the newest version. Now the
   next save sweeps a dead writer's directory (its ``flock`` is free: a reused pid does not matter)
   and never a live one's, and lineage skips the incomplete version.
5. A full disk under the mid-stage resume state raised torch's ``unexpected pos`` with no path and
   left a partial ``state.pt.tmp``. Now: the path and "No space left on device", no partial file,
   the previous ``state.pt`` whole.
6. A truncated ``model.safetensors`` or a deleted ``config.json`` failed after hundreds of lines
   naming neither (``Should have a model_type key``). Now: the version directory, the file, and what
   to do (rerun the stage, or pin another version, listed).
7. ``--load-versions`` to a version that does not exist said to run the pipeline that writes it.
   Now: the pinned version does not exist, and the versions that do.
9. ``model.safetensors`` was written 0600 (safetensors' private temporary file); now every file of a
   checkpoint has the umask's mode.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kedro.io.core import DatasetError, Version

from nemotron_cascade import lineage
from nemotron_cascade.datasets import Checkpoint, CheckpointDataset
from nemotron_cascade.datasets.checkpoint import WRITER_LOCK

V1, V2, V3 = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z", "2026-01-03T00.00.00.000Z"
ROOT = Path(__file__).resolve().parents[2]
STAGE = "sft"


def _stage_dir(project: Path) -> Path:
    return project / "data" / "06_models" / STAGE


def _ckpt(project: Path, save=None, load=None) -> CheckpointDataset:
    return CheckpointDataset(str(_stage_dir(project)), version=Version(load, save))


@pytest.fixture()
def project_v1(tmp_path, tiny):
    """A project whose stage has one complete checkpoint, V1."""
    model, tok = tiny
    _ckpt(tmp_path, save=V1).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v1"}))
    return tmp_path


def _age(path: Path, seconds: float = 3600) -> None:
    """Make ``path`` look untouched for ``seconds`` (past the sweep's grace for a writer not yet locked)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


# -- 4. a save killed mid-way -----------------------------------------------------------------------

_SAVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kedro.io.core import Version
    from nemotron_cascade import models
    from nemotron_cascade.datasets import Checkpoint, CheckpointDataset

    stage_dir, version, where = sys.argv[1], sys.argv[2], sys.argv[3]
    real_replace = os.replace

    def replace(src, dst, *a, **k):  # the moment before the checkpoint becomes visible
        if Path(dst).name == Path(stage_dir).name:
            if where == "kill-at-rename":
                os.kill(os.getpid(), signal.SIGKILL)
            print("at-rename", flush=True)
            sys.stdin.readline()  # a slow writer: held here until the test says go
        return real_replace(src, dst, *a, **k)

    os.replace = replace
    tok = models.train_tokenizer(["the cat sat on the mat", "1 + 1 = 2"], 300)
    model = models.build_tiny_model(tok, models.TinyModelConfig(
        hidden_size=16, num_layers=1, num_heads=1, num_kv_heads=1, intermediate_size=32, seed=0))
    if where == "kill-mid-save":  # the weights are written, the tokenizer is not
        tok.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    CheckpointDataset(stage_dir, version=Version(None, version)).save(Checkpoint(model, tok, {"stage": "sft"}))
    print("saved", flush=True)
""")


def _saver(stage_dir: Path, version: str, where: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", _SAVER, str(stage_dir), version, where], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("where, left", [
    ("kill-at-rename", {"model.safetensors", "tokenizer.json", "lineage.json", WRITER_LOCK}),
    ("kill-mid-save", {"model.safetensors", WRITER_LOCK}),  # the tokenizer not yet written
])
def test_a_save_killed_before_its_rename_is_skipped_by_lineage_and_swept_by_the_next_save(
        project_v1, tiny, caplog, where, left):
    proc = _saver(_stage_dir(project_v1), V2, where)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    leftover = _stage_dir(project_v1) / V2 / f".{STAGE}.tmp-{proc.pid}"
    assert left <= {p.name for p in leftover.iterdir()}

    # before: `python -m nemotron_cascade.lineage sft` exited 2, "not a checkpoint path"
    shown = subprocess.run([sys.executable, "-m", "nemotron_cascade.lineage", STAGE], cwd=project_v1, text=True,
                           capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert shown.returncode == 0 and shown.stdout.startswith(f"{STAGE} {V1} "), shown.stderr[-2000:]
    assert (f"skipping {Path('data/06_models') / STAGE / V2}: no complete checkpoint in it (a save that did not "
            "finish)") in shown.stderr
    assert _ckpt(project_v1).load().lineage["tag"] == "v1"

    # the next save sweeps it (a dead writer: its lock is free) and becomes the latest
    model, tok = tiny
    _age(leftover)
    with caplog.at_level(logging.WARNING, logger="nemotron_cascade.datasets.checkpoint"):
        _ckpt(project_v1, save=V3).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v3"}))
    assert f"removed {leftover}: the leftovers of a checkpoint save that was killed" in caplog.text
    assert sorted(p.name for p in _stage_dir(project_v1).iterdir()) == [V1, V3]  # V2 gone, with its directory
    assert lineage.find_checkpoint(STAGE, project_v1) == _stage_dir(project_v1) / V3 / STAGE


@pytest.mark.slow
def test_a_live_writers_temporary_directory_is_never_swept(project_v1, tiny):
    """A writer stalled just before its rename (old mtime, as a long weights write) keeps its lock."""
    proc = _saver(_stage_dir(project_v1), V2, "wait-at-rename")
    try:
        # libraries may print first (DeepSpeed's accelerator line, when accelerate makes transformers
        # import it); on EOF the writer died: its stderr is complete, so reading it cannot block
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "at-rename" for line in lines), proc.stderr.read()[-2000:]
        writing = _stage_dir(project_v1) / V2 / f".{STAGE}.tmp-{proc.pid}"
        _age(writing)
        model, tok = tiny
        _ckpt(project_v1, save=V3).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v3"}))
        assert writing.is_dir() and (writing / "model.safetensors").is_file()
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and out.strip().splitlines()[-1:] == ["saved"], err[-2000:]
    assert _ckpt(project_v1, load=V2).load().lineage["stage"] == STAGE  # its save completed whole
    assert sorted(p.name for p in (_stage_dir(project_v1) / V2).iterdir()) == [STAGE]


@pytest.mark.parametrize("pid, lock", [
    (1, True),           # pid 1 is alive (a reused pid): the free lock says the writer is gone
    (os.getpid(), True),  # even this process's pid
    (4242, False),       # a save from before the lock: no lock file, untouched for an hour
], ids=["pid-1", "own-pid", "no-lock-file"])
def test_a_dead_writers_directory_is_swept_whatever_its_pid(project_v1, tiny, pid, lock):
    leftover = _stage_dir(project_v1) / V2 / f".{STAGE}.tmp-{pid}"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"\0" * 100)
    if lock:
        (leftover / WRITER_LOCK).touch()
    _age(leftover)
    model, tok = tiny
    _ckpt(project_v1, save=V3).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v3"}))
    assert sorted(p.name for p in _stage_dir(project_v1).iterdir()) == [V1, V3]


def test_a_fresh_temporary_directory_is_kept_until_the_grace_has_passed(project_v1, tiny):
    """Between its ``mkdir`` and its ``flock`` a writer holds no lock yet: a young directory stays."""
    young = _stage_dir(project_v1) / V2 / f".{STAGE}.tmp-4242"
    young.mkdir(parents=True)
    model, tok = tiny
    _ckpt(project_v1, save=V3).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v3"}))
    assert young.is_dir()


def test_lineage_of_a_stage_whose_only_version_is_incomplete_says_so(tmp_path):
    (_stage_dir(tmp_path) / V2 / f".{STAGE}.tmp-4242").mkdir(parents=True)
    with pytest.raises(lineage.LineageError, match=f"no complete checkpoint under {_stage_dir(tmp_path)}"):
        lineage.find_checkpoint(STAGE, tmp_path)


def test_a_killed_saves_lineage_file_is_not_taken_for_a_checkpoint(project_v1):
    """The lineage file is written last, just before the rename: a kill there left a directory that
    looked complete to ``lineage <version>``."""
    leftover = _stage_dir(project_v1) / V2 / f".{STAGE}.tmp-4242"
    leftover.mkdir(parents=True)
    (leftover / "lineage.json").write_text('{"stage": "sft"}')
    assert lineage.find_checkpoint(STAGE, project_v1) == _stage_dir(project_v1) / V1 / STAGE
    with pytest.raises(lineage.LineageError, match=f"no checkpoint '{V2}'"):
        lineage.find_checkpoint(V2, project_v1)


# -- 5. a full disk under the resume state ----------------------------------------------------------

def _resume_objects(step_lr: float = 0.1):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=step_lr)
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    return model, opt


TORCH_FULL_DISK = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def _half_then(error):
    """A ``torch.save`` that writes half the state's bytes to the file, then raises ``error``."""
    import io

    import torch

    real_save = torch.save

    def save(obj, f, *a, **k):
        buf = io.BytesIO()
        real_save(obj, buf)
        Path(f).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise error
    return save


@pytest.mark.parametrize("error, disk_full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),  # a Python-level writer's error
    (RuntimeError(TORCH_FULL_DISK), True),  # torch's own C++ writer, on a disk that is still full
    (RuntimeError(TORCH_FULL_DISK), False),  # the same, with room again: a cut-short write, said so
], ids=["oserror", "torch-disk-full", "torch-cut-short"])
def test_a_failed_resume_save_names_the_file_removes_it_and_keeps_the_previous_state(
        tmp_path, monkeypatch, error, disk_full):
    import torch

    from nemotron_cascade.training import resume

    model, opt = _resume_objects()
    resume.save(str(tmp_path), "fp", model, opt, None, 1, [{"loss": 1.0}])
    before = (tmp_path / "state.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _half_then(error))
    if disk_full:
        def full_open(file, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        monkeypatch.setattr(resume, "open", full_open, raising=False)  # the probe write beside it
    with pytest.raises(OSError) as err:
        resume.save(str(tmp_path), "fp", model, opt, None, 2, [{"loss": 1.0}, {"loss": 0.5}])
    monkeypatch.undo()
    message = str(err.value)
    assert f"could not save the resume state of step 2 to {tmp_path / 'state.pt.tmp'}" in message
    if disk_full:
        assert err.value.errno == errno.ENOSPC and "No space left on device" in message
    else:
        assert "the write was cut short" in message and "unexpected pos" in message
    assert f"the previous state, if any, is still {tmp_path / 'state.pt'}" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no partial file, no probe
    assert (tmp_path / "state.pt").read_bytes() == before
    assert resume.load(str(tmp_path), "fp", *_resume_objects(0.5), None)["step"] == 1


_FULL_TMPFS = textwrap.dedent("""
    import json, os, sys
    import torch
    from nemotron_cascade.training import resume

    d = sys.argv[1]
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    opt = torch.optim.AdamW(model.parameters())
    resume.save(d, "fp", model, opt, None, 1, [])
    with open(os.path.join(d, "filler"), "wb") as f:  # fill the disk up to the last 16 KiB
        try:
            f.write(bytes(os.statvfs(d).f_bavail * os.statvfs(d).f_frsize - 16384))
        except OSError:
            pass
    try:
        resume.save(d, "fp", model, opt, None, 2, [])
    except OSError as e:
        out = {"errno": e.errno, "message": str(e), "cause": repr(e.__cause__)}
    os.remove(os.path.join(d, "filler"))
    out["left"] = sorted(os.listdir(d))
    out["step"] = resume.load(d, "fp", model, opt, None)["step"]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_a_really_full_disk_under_the_resume_state(tmp_path):
    """The real thing, no doubles: a 1 MiB tmpfs (a private mount namespace, ``unshare -rm``)."""
    import json
    import shutil

    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    mnt = tmp_path / "small"
    mnt.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && exec "{sys.executable}" -c "$0" "{mnt}"'
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, _FULL_TMPFS], env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode and "mount" in proc.stderr and "torch" not in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "unexpected pos" in out["cause"]  # what the user read before
    assert out["errno"] == errno.ENOSPC and "No space left on device" in out["message"]
    assert f"{mnt / 'state.pt.tmp'}" in out["message"]
    assert out["left"] == ["state.pt"] and out["step"] == 1


# -- 6. a corrupt checkpoint ------------------------------------------------------------------------

def _two_versions(project: Path, tiny) -> Path:
    model, tok = tiny
    _ckpt(project, save=V2).save(Checkpoint(model, tok, {"stage": STAGE, "tag": "v2"}))
    return _stage_dir(project) / V2 / STAGE


@pytest.mark.parametrize("damage, file, words", [
    ("truncate", "model.safetensors", "cannot be read (SafetensorError: Error while deserializing header"),
    ("delete", "config.json", "is missing"),
    ("delete", "model.safetensors", "is missing"),
    ("garble", "config.json", "cannot be read"),
    ("delete", "tokenizer.json", "cannot be read"),
])
def test_a_damaged_checkpoint_names_its_version_directory_the_file_and_what_to_do(
        project_v1, tiny, damage, file, words):
    checkpoint = _two_versions(project_v1, tiny)
    target = checkpoint / file
    if damage == "truncate":
        os.truncate(target, target.stat().st_size // 2)
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text('{"model_type": ')
    with pytest.raises(DatasetError) as err:
        _ckpt(project_v1).load()  # the latest: V2
    message = str(err.value)
    assert f"the checkpoint in version directory {checkpoint.parent} is damaged or incomplete" in message
    assert f"{target} {words}" in message
    assert "Rerun the stage that writes it, or pin another version with --load-versions=<dataset>:<version>" \
        in message and f"other versions under {_stage_dir(project_v1)}: {V1})" in message
    assert "model_type" not in message.replace('{"model_type": ', "")  # not "Should have a model_type key"
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no library traceback
    assert _ckpt(project_v1, load=V1).load().lineage["tag"] == "v1"  # the advice works


def test_a_pinned_version_that_does_not_exist_lists_those_that_do(project_v1):
    with pytest.raises(DatasetError) as err:
        _ckpt(project_v1, load=V2).load()
    assert str(err.value) == (f"no checkpoint at {_stage_dir(project_v1) / V2 / STAGE}: version {V2} of "
                              f"{_stage_dir(project_v1)} does not exist (versions that exist: {V1})")


# -- 7. --load-versions to a version that does not exist --------------------------------------------

def test_the_upstream_check_says_the_pinned_version_does_not_exist(project_v1, tiny):
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node

    from nemotron_cascade.tracking.upstream import MissingUpstreamError, UpstreamCheckHook

    model, tok = tiny
    _ckpt(project_v1, save=V3).save(Checkpoint(model, tok, {"stage": STAGE}))
    (_stage_dir(project_v1) / V2 / f".{STAGE}.tmp-4242").mkdir(parents=True)  # incomplete: not listed
    catalog = DataCatalog({"sft.policy": _ckpt(project_v1, load="2026-05-05T00.00.00.000Z")})
    pipe = Pipeline([node(lambda p: p, "sft.policy", "out")])
    with pytest.raises(MissingUpstreamError) as err:
        UpstreamCheckHook().before_pipeline_run({"load_versions": {"sft.policy": "2026-05-05T00.00.00.000Z"}},
                                                pipe, catalog)
    assert str(err.value) == (
        "missing upstream datasets for this run:\n  - sft.policy: the pinned version 2026-05-05T00.00.00.000Z "
        "(--load-versions=sft.policy:2026-05-05T00.00.00.000Z) does not exist; "
        f"versions that exist: {V1}, {V3}")


@pytest.mark.slow
def test_kedro_run_with_a_pinned_version_that_does_not_exist(tmp_path, make_project):
    project = make_project(tmp_path / "project")
    real = project / "data" / "06_models" / "if_rl" / V1 / "if_rl"
    real.mkdir(parents=True)  # a version directory (its contents are not read: the run stops first)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "NEMOTRON_CASCADE_NO_MLFLOW": "1", "COLUMNS": "2000"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", "--env", "test",
                           "--pipelines=math_rl", f"--load-versions=if_rl.policy:{V2}"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert (f"if_rl.policy: the pinned version {V2} (--load-versions=if_rl.policy:{V2}) does not exist; "
            f"versions that exist: {V1}") in out, out[-3000:]
    assert "if_rl.policy (produced by pipeline" not in out  # not "run its pipeline"


# -- 9. file modes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_checkpoint_files_get_the_umasks_mode(tmp_path, tiny, mask):
    model, tok = tiny
    old = os.umask(mask)
    try:
        _ckpt(tmp_path, save=V1).save(Checkpoint(model, tok, {}))
    finally:
        os.umask(old)
    checkpoint = _stage_dir(tmp_path) / V1 / STAGE
    modes = {p.name: p.stat().st_mode & 0o777 for p in checkpoint.iterdir()}
    assert "model.safetensors" in modes and WRITER_LOCK not in modes
    assert modes == dict.fromkeys(modes, 0o666 & ~mask)  # before: model.safetensors 0600
    for d in (checkpoint, checkpoint.parent):
        assert d.stat().st_mode & 0o777 == 0o777 & ~mask
