"""Numerical faults in the training loops: skip a poisoned step, stop a run that keeps failing.

Every loop (SFT, GRPO, reward model) treats a step the same way: when its reward, loss or gradient
norm is NaN or inf, the optimiser step is **skipped** (gradients zeroed, parameters and optimiser
state untouched; the LR schedule and the data order still advance, so the rest of the run sees the
same steps it would have), a warning is logged and the running count goes to MLflow as
``faults/skipped_steps`` (with ``faults/consecutive_bad_steps``). A transient overflow then costs
one step, not a stage; more than ``max_bad_steps`` bad steps **in a row** stop the run with a
:class:`NonFiniteError` saying what was non-finite, since a run that keeps producing NaN is broken
(a learning rate too high, a reward that returns NaN), not unlucky. ``max_bad_steps: 0`` fails on
the first bad step.

Independently, :func:`check_finite_state` refuses to write a resume state or a checkpoint whose
tensors are not all finite, so a poisoned model never becomes the input of a later run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from nemotron_cascade import tracking

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """Training produced NaN/inf too often, or a poisoned state was about to be saved."""


def is_finite(value) -> bool:
    """Whether a Python number or a tensor (every element of it) is finite."""
    if hasattr(value, "isfinite"):
        return bool(value.isfinite().all())
    return math.isfinite(float(value))


class FaultGuard:
    """Counts a loop's non-finite steps; see the module docstring for the policy."""

    def __init__(self, where: str, max_bad_steps: int):
        if max_bad_steps < 0:
            raise ValueError(f"max_bad_steps must be ≥ 0, got {max_bad_steps}")
        self.where, self.max_bad_steps = where, max_bad_steps
        self.skipped, self.consecutive, self._last_bad = 0, 0, None

    def healthy(self, step: int, hint: str = "", **values) -> bool:
        """``True`` when every given value (numbers or tensors; ``None`` is ignored) is finite.

        Otherwise the step counts as bad: warn and log the counters (the caller then skips its
        optimiser step), or raise :class:`NonFiniteError` past ``max_bad_steps`` bad steps in a row.
        ``step`` is the number of the step being taken (a loop may check several values of one step
        in turn; bad steps are consecutive when their numbers are).
        """
        bad = {k: v for k, v in values.items() if v is not None and not is_finite(v)}
        if not bad:
            return True
        self.skipped += 1
        self.consecutive = self.consecutive + 1 if self._last_bad == step - 1 else 1
        self._last_bad = step
        what = ", ".join(f"{k}={_show(v)}" for k, v in bad.items()) + (f" ({hint})" if hint else "")
        tracking.log_metrics({"faults/skipped_steps": self.skipped,
                              "faults/consecutive_bad_steps": self.consecutive}, step)
        if self.consecutive > self.max_bad_steps:
            raise NonFiniteError(
                f"{self.where}: {self.consecutive} consecutive steps with non-finite values (last: step {step}, "
                f"{what}), more than max_bad_steps={self.max_bad_steps}; stopping. Lower the learning rate or "
                "check the data and the reward.")
        log.warning("%s step %d: non-finite %s; optimiser step skipped (%d skipped in this run, %d in a row, "
                    "the run stops after %d in a row)", self.where, step, what, self.skipped, self.consecutive,
                    self.max_bad_steps + 1)
        return False

    def state_dict(self) -> dict:
        """The counters, saved with a resume state."""
        return {"skipped": self.skipped, "consecutive": self.consecutive, "last_bad": self._last_bad}

    def load_state_dict(self, state: dict) -> None:
        self.skipped, self.consecutive, self._last_bad = state["skipped"], state["consecutive"], state["last_bad"]


def _show(value) -> str:
    if hasattr(value, "isfinite"):
        n_bad = int((~value.isfinite()).sum())
        return f"{float(value):g}" if value.numel() == 1 else f"{n_bad} of {value.numel()} values non-finite"
    return f"{float(value):g}"


def nonfinite_tensors(named: Iterable[tuple[str, object]]) -> list[str]:
    """Names of the floating-point tensors of ``named`` with a NaN or inf anywhere."""
    import torch

    items = [(n, t) for n, t in named if torch.is_tensor(t) and t.is_floating_point() and t.numel()]
    if not items:
        return []
    finite = torch.stack([torch.isfinite(t).all().cpu() for _, t in items]).tolist()  # one sync
    return [n for (n, _), ok in zip(items, finite) if not ok]


def check_finite_state(what: str, model, opt=None) -> None:
    """Raise :class:`NonFiniteError` if ``model`` (or ``opt``'s state) holds NaN/inf: never save it."""
    bad = nonfinite_tensors(model.state_dict().items())
    if opt is not None:
        bad += nonfinite_tensors((f"optimizer.state.{i}.{k}", t)
                                 for i, s in opt.state_dict()["state"].items() for k, t in s.items())
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteError(f"refusing to save {what}: non-finite values in {len(bad)} tensors ({shown}); "
                             "the previous saved state is left as it was")


def guarded_update(engine, guard: FaultGuard, step: int, loss, backward_loss=None):
    """One optimiser update through a training ``engine`` (``training.engines``), guarded.

    A non-finite ``loss`` is not backpropagated (``backward_loss``, default ``loss``, is what is
    backpropagated: a data-parallel rank's share of it); a non-finite loss or gradient norm skips
    the optimiser step and counts in ``guard``. Returns ``(stepped, grad_norm)``.
    """
    engine.zero_grad()
    if is_finite(loss):
        engine.backward(loss if backward_loss is None else backward_loss)
    return guarded_step(engine, guard, step, loss)


def guarded_step(engine, guard: FaultGuard, step: int, loss=None):
    """The guarded end of an update whose gradients are in (one or several ``engine.backward`` calls).

    ``loss`` is the step's loss, or ``None`` when there is none to check (a loop that accumulated
    micro-batches passes its first non-finite one, or ``None``). With a finite or no ``loss`` the
    gradient is clipped (its norm measured); a non-finite loss or norm skips the optimiser step
    (gradients zeroed) and counts in ``guard``. Returns ``(stepped, grad_norm)``.
    """
    grad_norm = engine.clip_grad_norm() if loss is None or is_finite(loss) else None
    if not guard.healthy(step, loss=loss, grad_norm=grad_norm):
        engine.zero_grad()  # skipped: no update, but the caller's schedule and data order move on
        return False, grad_norm
    stepped_norm = engine.step()  # DeepSpeed clips inside step (and skips a non-finite norm itself)
    if stepped_norm is not None:
        grad_norm = stepped_norm
    guard.healthy(step, grad_norm=grad_norm)
    return True, grad_norm
