"""Mid-stage training state: saved atomically, resumed only when the run is the same run.

One process (the torch engine): the state (model and optimiser tensors, scheduler, RNG states,
step, metric history) goes to ``<resume_dir>/state.pt`` through a temporary file and
``os.replace``, so a crash during the save leaves the previous state intact; a failed write (a full
disk) removes the partial temporary file and says which file and why. A ``fingerprint``
(hash of the stage's inputs and parameters) guards against resuming a different run: a mismatch is
logged and ignored.

DeepSpeed (:func:`save_sharded`, :func:`load_sharded`; every rank calls them): the model and the
ZeRO-sharded optimiser state go through DeepSpeed's own ``save_checkpoint`` into
``<resume_dir>/step<N>/`` (each rank writes its shard), next to one small file per rank
(``rank<r>.pt``: its Python, NumPy and torch RNG states and per-rank loop state). The loop's state
(step, history, LR scheduler, data position) rides in DeepSpeed's ``client_state``. A save is
committed by rank 0 replacing ``<resume_dir>/ds_state.json`` (fingerprint, tag, step, world size,
ZeRO stage) once every rank's files are written (DeepSpeed's own ``latest`` file is not written:
rank 0 would write it before the other ranks finish their shards), and only then are older
``step*`` dirs removed: a crash at any point leaves the last committed state whole and a
half-written tag is never read. A different fingerprint, world size or ZeRO stage starts afresh
(logged). Every rank must see ``resume_dir`` at the same path (several nodes: a shared
filesystem); a save or a load refuses with that message when a rank cannot see the others' files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def fingerprint(*parts) -> str:
    """A short stable hash of a stage's inputs and parameters (JSON-serialisable parts)."""
    key = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def save(resume_dir: str, fingerprint: str, model, opt, sched, step: int, history: list[dict], extra=None) -> None:
    """Write the training state of ``step`` atomically; a state with NaN/inf tensors is refused."""
    import numpy as np
    import torch

    from nemotron_cascade.training.faults import check_finite_state

    check_finite_state(f"the resume state of step {step} to {resume_dir}", model, opt)
    path = Path(resume_dir)
    path.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": fingerprint, "step": step, "history": history, "extra": extra,
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else None,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
    }
    tmp = path / "state.pt.tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path / "state.pt")
    except (OSError, RuntimeError) as exc:  # torch's own writer says only "unexpected pos" on a full disk
        raise _failed_write(tmp, path / "state.pt", step, exc) from exc
    log.info("saved resume state at step %d to %s", step, path)


def _failed_write(tmp: Path, target: Path, step: int, exc: BaseException) -> OSError:
    """The error for a resume-state save that failed writing ``tmp``: it names the file and the cause
    (``No space left on device``, ...), and the partial ``tmp`` is removed; ``target`` (the previous
    state) was never touched."""
    code = _write_errno(tmp, exc)
    cause = os.strerror(code) if code else f"the write was cut short ({exc}); is the disk full or over quota?"
    with contextlib.suppress(OSError):
        tmp.unlink()
    return OSError(code or errno.EIO, f"could not save the resume state of step {step} to {tmp}: {cause}. "
                   f"The partial file was removed; the previous state, if any, is still {target}")


def _write_errno(tmp: Path, exc: BaseException) -> int | None:
    """The errno behind a failed write of ``tmp``: the ``OSError``'s own, else (torch's C++ writer
    raises a ``RuntimeError`` without one) the one a small write beside it gets now, while the partial
    file still takes its space; ``None`` when that write succeeds."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    probe = tmp.with_name(f".{tmp.name}.probe")
    try:
        with open(probe, "wb", buffering=0) as f:
            left = memoryview(bytes(1 << 16))
            while left:  # a short write is retried: on a full disk the retry fails with ENOSPC
                left = left[f.write(left):]
            os.fsync(f.fileno())
    except OSError as e:
        return e.errno
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


def load(resume_dir: str, fingerprint: str, model, opt, sched) -> dict | None:
    """Restore the state saved by :func:`save` into the given objects; ``None`` if there is none."""
    import numpy as np
    import torch

    file = Path(resume_dir) / "state.pt"
    if not file.exists():
        return None
    state = torch.load(file, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        log.warning("ignoring resume state in %s: it belongs to another run (fingerprint differs)", resume_dir)
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None and state["scheduler"] is not None:
        sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    log.info("resuming from step %d (%s)", state["step"], file)
    return state


def clear(resume_dir: str) -> None:
    """Remove the resume state of a finished stage."""
    shutil.rmtree(resume_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ DeepSpeed
POINTER = "ds_state.json"
TAG_RE = re.compile(r"step\d+")
SHARED_FS_WAIT_S = 10.0  # how long another rank's files may take to show up (a network filesystem)


def _rng_state() -> dict:
    import numpy as np
    import torch

    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def read_pointer(resume_dir) -> dict | None:
    """The committed DeepSpeed state's record (``ds_state.json``), or ``None`` (absent or unreadable)."""
    file = Path(resume_dir) / POINTER
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring the resume record %s: unreadable (%s)", file, e)
        return None


def usable_pointer(resume_dir, fingerprint: str, world_size: int, zero_stage: int) -> dict | None:
    """The committed record if this run may resume from it, else ``None`` with the reason logged:
    none saved, another run's (fingerprint), another world size or ZeRO stage (ZeRO's shards are
    per rank), or a tag dir that is gone."""
    meta = read_pointer(resume_dir)
    if meta is None:
        return None
    if meta.get("fingerprint") != fingerprint:
        log.warning("ignoring resume state in %s: it belongs to another run (fingerprint differs); starting fresh",
                    resume_dir)
        return None
    if (meta.get("world_size"), meta.get("zero_stage")) != (world_size, zero_stage):
        log.warning("ignoring resume state in %s: saved by %s rank(s) with ZeRO-%s, this run has %d with ZeRO-%d "
                    "(ZeRO's shards are per rank); starting fresh", resume_dir, meta.get("world_size"),
                    meta.get("zero_stage"), world_size, zero_stage)
        return None
    if not (Path(resume_dir) / str(meta.get("tag"))).is_dir():
        log.warning("ignoring resume state in %s: its tag %r is missing; starting fresh", resume_dir, meta.get("tag"))
        return None
    return meta


def _write_pointer(path: Path, meta: dict) -> None:
    tmp = path / f"{POINTER}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(meta, indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / POINTER)


def _all_exist(files: list[Path], wait_s: float | None = None) -> bool:
    """Whether every file exists, allowing a network filesystem ``wait_s`` to show them."""
    import time

    deadline = time.monotonic() + (SHARED_FS_WAIT_S if wait_s is None else wait_s)
    while not all(f.exists() for f in files):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _not_shared(path: Path, what: str) -> RuntimeError:
    return RuntimeError(f"{what}: some rank cannot see the others' files in {path}. Every rank must see resume_dir at "
                        "the same path: on several nodes, put it on a shared filesystem")


def _local_nonfinite(model, opt) -> list[str]:
    """Names of this rank's non-finite tensors: the module's (ZeRO-3: its own partitions) and the
    optimiser's parameters and state (ZeRO-1/2/3: this rank's fp32 partitions)."""
    from nemotron_cascade.training.faults import nonfinite_tensors

    named = list(model.state_dict().items())
    named += [(f"{n}.partition", p.ds_tensor) for n, p in model.named_parameters() if hasattr(p, "ds_tensor")]
    named += [(f"optimizer.param_groups.{g}.{i}", p) for g, group in enumerate(opt.param_groups)
              for i, p in enumerate(group["params"])]
    # opt.state itself: under ZeRO-3 opt.state_dict() fails (its state is keyed by partitions that
    # are not the param groups' tensors at that moment)
    named += [(f"optimizer.state.{i}.{k}", t) for i, s in enumerate(opt.state.values()) for k, t in s.items()]
    return nonfinite_tensors(named)


def save_sharded(resume_dir: str, fingerprint: str, engine, opt, sched, step: int, history: list[dict],
                 extra: dict | None = None, rank_extra=None) -> None:
    """Every rank: the training state of ``step`` through DeepSpeed's checkpointing, committed atomically.

    ``engine`` is a :class:`~nemotron_cascade.training.engines.DeepSpeedEngine`, ``opt`` and
    ``sched`` the loop's torch optimiser (wrapped by DeepSpeed) and LR scheduler. ``extra`` (the
    same on every rank, e.g. the prompt pool) is kept by rank 0's ``client_state``; ``rank_extra``
    is this rank's own. A state with NaN/inf tensors on any rank is refused on every rank
    (:class:`~nemotron_cascade.training.faults.NonFiniteError`), the previous one left as it was.
    """
    import torch

    from nemotron_cascade.training.faults import NonFiniteError

    path, tag = Path(resume_dir), f"step{step}"
    bad = _local_nonfinite(engine.module, opt)
    if not engine.all_true(not bad):
        shown = ", ".join(bad[:5]) if bad else "on another rank"
        raise NonFiniteError(f"refusing to save the resume state of step {step} to {resume_dir}: non-finite values "
                             f"({shown}); the previous saved state is left as it was")
    if engine.is_rank0:
        path.mkdir(parents=True, exist_ok=True)
        if (read_pointer(path) or {}).get("tag") == tag:  # never overwrite the committed state in place
            (path / POINTER).unlink()
        shutil.rmtree(path / tag, ignore_errors=True)  # a save of this step that never committed
        (path / tag).mkdir()
    engine.barrier()
    (path / tag).mkdir(parents=True, exist_ok=True)  # a rank that does not share the filesystem: caught below
    torch.save({"rng": _rng_state(), "extra": rank_extra}, path / tag / f"rank{engine.rank}.pt")
    loop = {"step": step, "history": history, "extra": extra,
            "scheduler": sched.state_dict() if sched is not None else None}
    engine.save_checkpoint(str(path), tag, {"loop": loop})  # ends with a barrier: every rank's files are written
    complete = _all_exist([path / tag / f"rank{r}.pt" for r in range(engine.world_size)]) if engine.is_rank0 else True
    if not engine.all_true(complete):
        raise _not_shared(path, f"the resume state of step {step}")
    if engine.is_rank0:
        _write_pointer(path, {"fingerprint": fingerprint, "tag": tag, "step": step, "world_size": engine.world_size,
                              "zero_stage": engine.stage})
        for old in path.iterdir():
            if old.is_dir() and TAG_RE.fullmatch(old.name) and old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
        log.info("saved resume state at step %d to %s (%d ranks, ZeRO-%d)", step, path / tag, engine.world_size,
                 engine.stage)
    engine.barrier()


def load_sharded(resume_dir: str, fingerprint: str, engine, opt, sched) -> dict | None:
    """Every rank: restore the state :func:`save_sharded` committed into ``engine`` (model and
    optimiser: DeepSpeed), ``sched`` and this rank's RNG states; ``None`` to start fresh.

    Rank 0 decides (:func:`usable_pointer`) and every rank follows. Returns ``{"step", "history",
    "extra", "rank_extra"}``.
    """
    import torch

    path = Path(resume_dir)
    meta = usable_pointer(path, fingerprint, engine.world_size, engine.stage) if engine.is_rank0 else None
    meta = engine.broadcast_from_rank0(meta)
    if meta is None:
        return None
    own = path / meta["tag"] / f"rank{engine.rank}.pt"
    if not engine.all_true(_all_exist([own])):
        raise _not_shared(path, f"resuming from {meta['tag']}")
    loop = engine.load_checkpoint(str(path), meta["tag"])["loop"]
    if sched is not None and loop["scheduler"] is not None:
        sched.load_state_dict(loop["scheduler"])
        for group, lr in zip(opt.param_groups, sched.get_last_lr()):
            group["lr"] = lr  # the LR of the next step, whatever DeepSpeed restored
    mine = torch.load(own, weights_only=False)
    _set_rng_state(mine["rng"])
    if engine.is_rank0:
        log.info("resuming from step %d (%s, %d ranks, ZeRO-%d)", loop["step"], path / meta["tag"], engine.world_size,
                 engine.stage)
    return {"step": loop["step"], "history": loop["history"], "extra": loop["extra"], "rank_extra": mine["extra"]}


def clear_sharded(resume_dir: str, engine) -> None:
    """Every rank: remove the resume state of a finished stage (rank 0 removes, all wait)."""
    engine.barrier()
    if engine.is_rank0:
        clear(resume_dir)
    engine.barrier()
