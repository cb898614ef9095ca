"""Mid-stage training state: saved atomically, resumed only when the run is the same run.

The state (model and optimiser tensors, scheduler, RNG states, step, metric history) goes to
``<resume_dir>/state.pt`` through a temporary file and ``os.replace``, so a crash during the save
leaves the previous state intact. A ``fingerprint`` (hash of the stage's inputs and parameters)
guards against resuming a different run: a mismatch is logged and ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
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
    torch.save(state, tmp)
    os.replace(tmp, path / "state.pt")
    log.info("saved resume state at step %d to %s", step, path)


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
