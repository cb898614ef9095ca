"""The one training loop: pretraining, SFT, the reward model and GRPO plug their step into it.

A stage supplies only what is its own — how one optimiser step is taken (its batch, its loss, its
metrics) — and this module owns the skeleton every stage shares:

* seed, AdamW and the learning-rate schedule (:func:`lr_at`: linear warm-up, then constant or
  cosine decay to ``min_lr_ratio``);
* the training engine (:mod:`~nemotron_cascade.training.engines`: plain ``torch`` in one process,
  or ``deepspeed`` ZeRO data parallel under a launcher) and activation checkpointing;
* the fault guard (:class:`~nemotron_cascade.training.faults.FaultGuard`: a non-finite step is
  skipped, too many in a row stop the run);
* mid-stage resume (:mod:`~nemotron_cascade.training.resume`): every ``checkpoint_every`` steps
  the model, optimiser, scheduler, RNG, history, the guard's counters and the stage's own state
  objects (a prompt pool, a generator) are saved with write-then-rename (DeepSpeed: its sharded
  checkpoints), and a rerun with the same fingerprint continues from the last one. With
  ``keep_final_state`` the state after the last step stays until the caller's checkpoint is saved
  (the Kedro run journal clears it), so a kill between the last step and the save costs nothing;
* the progress bar and the metrics: a step returns its metrics (or ``None`` when it is not
  logged), the loop adds the learning rate, appends them to the history and hands them to
  ``on_metrics`` on rank 0 only.

* device placement and precision (:mod:`~nemotron_cascade.training.placement`): when the stage
  starts the model moves to its device (``LoopSettings.device``; ``None``: the node's
  :func:`~nemotron_cascade.training.placement.scope`, ``auto`` outside one) unless DeepSpeed places
  it; a bf16 model trains on the torch engine with fp32 master weights and bf16 autocast and is
  cast back to bf16 at the end (a float32 model: no cast, no autocast).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nemotron_cascade.training import engines, placement
from nemotron_cascade.training import resume as resume_lib
from nemotron_cascade.training.faults import FaultGuard

log = logging.getLogger(__name__)

MetricsCallback = Callable[[dict, int], None]
StepFn = Callable[[int], "dict | None"]  # step index (0-based) -> the step's metrics, or None (not logged)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs of a stage's hyper-parameters (each trainer builds it from its config)."""

    name: str  # the fault guard's and the progress bar's label ("sft", "GRPO", "reward model")
    max_steps: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay: str = "constant"  # after the warm-up: "constant" or "cosine" (to min_lr_ratio at max_steps)
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    max_bad_steps: int = 3
    checkpoint_every: int = 100
    seed: int = 0
    engine: str = "torch"
    deepspeed: dict | str | None = None
    micro_batch: int = 1  # DeepSpeed's per-rank micro-batch (its ``auto`` batch sizes)
    gradient_checkpointing: bool = False
    progress: tuple[str, ...] = ("loss",)  # metrics shown on the progress bar
    device: str | None = None  # auto | cpu | cuda | cuda:N; None: the stage's placement.scope (auto outside one)
    compute_dtype: str | None = None  # float32 | bfloat16; None: the dtype the model arrives in

    @property
    def sharded(self) -> bool:
        """Whether the engine keeps its own (per-rank, sharded) checkpoints."""
        return self.engine != "torch"


@dataclass(frozen=True)
class Resume:
    """Where and under which fingerprint a loop saves and finds its mid-stage state."""

    dir: str | None = None
    fingerprint: str = ""
    keep_final_state: bool = False


def lr_at(step: int, s: LoopSettings) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup_steps``, then constant
    (the paper's RL stages, the reward model) or cosine down to ``min_lr_ratio`` at ``max_steps``
    (SFT: a constant LR makes the tiny model's accuracy jump around)."""
    if step < s.warmup_steps:
        return (step + 1) / s.warmup_steps
    if s.decay == "constant":
        return 1.0
    progress = (step - s.warmup_steps) / max(1, s.max_steps - s.warmup_steps)
    return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Loop:
    """A built loop: the model, its optimiser, scheduler, engine and fault guard; what a step uses."""

    model: Any
    settings: LoopSettings
    opt: Any
    sched: Any
    engine: Any
    guard: FaultGuard
    history: list[dict] = field(default_factory=list)
    precision: placement.Precision = placement.Precision()

    @classmethod
    def build(cls, model, settings: LoopSettings, precision: placement.Precision | None = None) -> Loop:
        """Seed, AdamW (over the model as placed and cast), the schedule, the fault guard and the engine."""
        import torch

        precision = precision or placement.Precision()
        torch.manual_seed(settings.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=settings.betas,
                                weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, settings))
        guard = FaultGuard(settings.name, settings.max_bad_steps)
        eng = engines.make_loop_engine(settings.engine, model, opt, settings.deepspeed, settings.grad_clip,
                                       settings.micro_batch, precision)
        return cls(model, settings, opt, sched, eng, guard, precision=precision)

    def load(self, resume: Resume, state: Mapping[str, Any], rank_state: Mapping[str, Any]) -> int:
        """Restore a saved mid-stage state (if one with the fingerprint exists); the step to start at."""
        if not resume.dir:
            return 0
        if self.settings.sharded:
            saved = resume_lib.load_sharded(resume.dir, resume.fingerprint, self.engine, self.opt, self.sched)
        else:
            saved = resume_lib.load(resume.dir, resume.fingerprint, self.model, self.opt, self.sched)
        if not saved:
            return 0
        extra = saved["extra"] or {}
        own = (saved["rank_extra"] or {}) if self.settings.sharded else extra
        for objects, states in ((state, extra), (rank_state, own)):
            for name, obj in objects.items():
                if states.get(name) is not None:
                    obj.load_state_dict(states[name])
        self.history = saved["history"]
        return saved["step"]

    def save(self, resume: Resume, step: int, state: Mapping[str, Any], rank_state: Mapping[str, Any]) -> None:
        """Save the state after ``step`` steps (every rank under DeepSpeed)."""
        extra = {name: obj.state_dict() for name, obj in state.items()}
        own = {name: obj.state_dict() for name, obj in rank_state.items()}
        if self.settings.sharded:
            resume_lib.save_sharded(resume.dir, resume.fingerprint, self.engine, self.opt, self.sched, step,
                                    self.history, extra, own)
        else:
            resume_lib.save(resume.dir, resume.fingerprint, self.model, self.opt, self.sched, step, self.history,
                            extra={**extra, **own})

    def clear(self, resume: Resume) -> None:
        """Remove the resume state of a finished stage."""
        if self.settings.sharded:
            resume_lib.clear_sharded(resume.dir, self.engine)
        else:
            resume_lib.clear(resume.dir)

    def record(self, step: int, metrics: dict, bar, on_metrics: MetricsCallback | None) -> None:
        """Log the metrics of step ``step`` (1-based): history, progress bar, ``on_metrics`` on rank 0."""
        metrics["lr"] = self.sched.get_last_lr()[0]
        self.history.append({"step": step, **metrics})
        shown = {k: f"{metrics[k]:.3f}" for k in self.settings.progress if k in metrics}
        if shown:
            bar.set_postfix(**shown)
        if on_metrics and self.engine.is_rank0:
            on_metrics(metrics, step)

    def run(self, step_fn: StepFn, resume: Resume, start: int, on_metrics: MetricsCallback | None,
            state: Mapping[str, Any], rank_state: Mapping[str, Any]) -> list[dict]:
        """Steps ``start .. max_steps - 1``; the resume state saved, kept or cleared; the history."""
        from tqdm.auto import tqdm

        s = self.settings
        bar = tqdm(range(start, s.max_steps), desc=s.name, initial=start, total=s.max_steps, leave=False,
                   disable=not self.engine.is_rank0)
        for step in bar:
            with self.precision.forward_context():  # bf16 autocast under mixed precision, else nothing
                metrics = step_fn(step)
            self.sched.step()
            if metrics is not None:
                self.record(step + 1, metrics, bar, on_metrics)
            if resume.dir and (step + 1) % s.checkpoint_every == 0 and step + 1 < s.max_steps:
                self.save(resume, step + 1, state, rank_state)
        self.model.eval()
        if resume.dir and resume.keep_final_state:
            if start < s.max_steps:
                self.save(resume, s.max_steps, state, rank_state)
        elif resume.dir:
            self.clear(resume)
        self.engine.finish()
        return self.history


def train_loop(model, settings: LoopSettings, make_step: Callable[[Loop], StepFn], *,
               resume: Resume = Resume(), on_metrics: MetricsCallback | None = None,
               state: Mapping[str, Any] | None = None, rank_state: Mapping[str, Any] | None = None) -> list[dict]:
    """Train ``model`` in place with the step ``make_step(loop)`` builds; the per-step history.

    ``state`` maps names to the stage's objects with ``state_dict``/``load_state_dict`` that are the
    same on every rank (saved once); ``rank_state`` those of each rank (saved per rank under
    DeepSpeed). The fault guard's counters are always saved, as ``guard``. ``make_step`` is called
    after a resumed state is restored, so it sees the restored objects.
    """
    dtypes, precision = placed(model, settings)
    try:
        with engines.gradient_checkpointing(model, settings.gradient_checkpointing):
            loop = Loop.build(model, settings, precision)
            state = {**(state or {}), "guard": loop.guard}
            rank_state = {k: v for k, v in (rank_state or {}).items() if hasattr(v, "load_state_dict")}
            start = loop.load(resume, state, rank_state)
            return loop.run(make_step(loop), resume, start, on_metrics, state, rank_state)
    finally:
        placement.restore_dtypes(model, dtypes)  # saved in the dtype it came in (the configured one)


def placed(model, settings: LoopSettings) -> tuple[dict, placement.Precision]:
    """Place ``model`` for a stage (its device, unless DeepSpeed places it) and cast it for its
    precision (fp32 master weights); its dtypes before, and the loop's :class:`~placement.Precision`."""
    device = placement.resolve_device(settings.device)
    bf16 = settings.engine != "torch" and engines.bf16_enabled(settings.deepspeed)
    precision = placement.precision_for(model, device, settings.engine, bf16, settings.compute_dtype)
    dtypes = placement.floating_dtypes(model)
    if settings.engine == "torch":  # DeepSpeed moves the module to its rank's accelerator itself
        placement.place(model, device)
    if precision.master_weights:
        placement.upcast(model)
    log.info("%s: %s on %s, compute %s%s", settings.name, settings.engine, device, precision.compute_dtype,
             " (fp32 master weights, autocast)" if precision.autocast else "")
    return dtypes, precision
