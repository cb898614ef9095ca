"""Training engines: one small interface over plain torch and DeepSpeed ZeRO.

A loop asks :func:`make_engine` for an engine and then only talks to it:

- ``backward(loss, boundary=True)`` (``boundary=False``: more backward calls accumulate into the
  same update before ``step()``, the gradient accumulation of a loop's micro-batches);
  ``clip_grad_norm()`` (the norm before the step, or ``None`` when the engine clips inside ``step``,
  as DeepSpeed does); ``step()`` (clip if not done yet, optimiser step; returns the gradient norm);
  ``zero_grad()``;
- ``forward_module`` (what the loop calls for its forward passes: the DeepSpeed engine itself, whose
  forward keeps ZeRO-3's micro-batch count; calling the bare module between ``backward(boundary=
  False)`` calls would make ZeRO-3 overwrite, not accumulate, the earlier micro-batches' gradients);
- ``module`` (the model), ``is_rank0``, ``rank``, ``world_size``, ``all_reduce_sum(x)``,
  ``all_reduce_mean(x)``; ``skips_nonfinite_step`` (``True`` when ``step()`` itself discards an
  update whose gradient norm is not finite, see below);
- ``state_dict_for_save()`` (a full state dict; under ZeRO-3 the shards are gathered, a
  collective every rank must call) and ``finish()`` (leave the model as a plain, full module).

The DeepSpeed engine also has what mid-stage resume needs (:func:`~nemotron_cascade.training.resume.save_sharded`):
``save_checkpoint(dir, tag, client_state)`` / ``load_checkpoint(dir, tag)`` (DeepSpeed's own, every
rank: ZeRO's optimiser state is sharded per rank), ``barrier()``, ``broadcast_from_rank0(obj)`` and
``all_true(flag)``.

``kind="torch"`` is the loops' original code path, operation for operation. ``kind="deepspeed"``
wraps the model with ``deepspeed.initialize`` and the caller's torch optimiser
(``zero_allow_untested_optimizer``: a DeepSpeed ``"optimizer"`` block would JIT-build a CPU Adam
op). Gradient clipping then happens inside DeepSpeed's step (``gradient_clipping``), ZeRO-1/2/3
skip the step themselves when the global gradient norm is not finite (their overflow path, which
also clears the partial accumulations ZeRO keeps outside ``.grad``: the one way to drop an update
that several ``backward(boundary=False)`` calls have started), and gradients are averaged over the
data-parallel ranks: a loop whose ranks each see a shard of the global batch must scale its
per-rank loss so that the mean over ranks is the global loss. Gradient accumulation is the loop's:
the config has ``gradient_accumulation_steps`` 1 and ``backward(boundary=...)`` sets DeepSpeed's
accumulation boundary (``set_gradient_accumulation_boundary``), so one ``step()`` follows any
number of micro-batches.

The DeepSpeed config is a dict, a path to a JSON file, or a name (``zero2``, ``zero3``) looked up
in ``conf/<profile>/deepspeed/<name>.json``. Keys starting with ``_`` are comments and are dropped;
``"auto"`` values are filled by the caller (:func:`fill_auto`).

Precision (:mod:`~nemotron_cascade.training.placement`): under mixed precision the torch engine
runs backward, clipping and the optimiser step outside the loop's bf16 autocast (on the fp32 master
weights). DeepSpeed's ``bf16`` block keeps its own fp32 master copy; with it the engine always sets
``bf16.check_grad_overflow`` (a bf16 ZeRO optimiser applies a NaN update without it) and, after a
step whose gradient norm is not finite, checks that the parameters are still finite: an update
DeepSpeed failed to discard stops the run (:class:`~nemotron_cascade.training.faults.NonFiniteError`)
instead of training on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("torch", "deepspeed")
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def load_deepspeed_config(config, profile: str = "gpu") -> dict:
    """A DeepSpeed config dict from a dict, a JSON path or a name in ``conf/<profile>/deepspeed/``."""
    if config is None:
        config = "zero2"
    if isinstance(config, dict):
        raw = dict(config)
    else:
        path = Path(config)
        if not path.suffix:
            path = CONF_DIR / profile / "deepspeed" / f"{config}.json"
        raw = json.loads(path.read_text())

    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if not k.startswith("_")}
    return clean(raw)


def fill_auto(config: dict, values: dict) -> dict:
    """``config`` with each top-level ``"auto"`` value (or missing key) of ``values`` filled in."""
    out = dict(config)
    for k, v in values.items():
        if out.get(k, "auto") == "auto":
            out[k] = v
    return out


def bf16_enabled(config) -> bool:
    """Whether a DeepSpeed config (dict, path or name, as :func:`load_deepspeed_config`) enables bf16."""
    bf16 = load_deepspeed_config(config).get("bf16") or {}
    return bool(bf16.get("enabled"))


def _ensure_process_group() -> None:
    """Single-process default env for ``torch.distributed`` when not launched by torchrun."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))


class TorchEngine:
    """Plain single-process torch: ``loss.backward()``, ``clip_grad_norm_``, ``opt.step()``."""

    rank, world_size, is_rank0 = 0, 1, True
    skips_nonfinite_step = False  # the caller's guard skips; step() would apply a NaN update

    def __init__(self, model, optimizer, grad_clip: float, precision=None):
        self.module, self.optimizer, self.grad_clip = model, optimizer, grad_clip
        self.forward_module = model
        self._norm = None
        # mixed precision: backward, clipping and the step run outside the loop's autocast
        self._outside = getattr(precision, "outside_autocast", lambda: None)

    def _no_autocast(self):
        return self._outside() or contextlib.nullcontext()

    def backward(self, loss, boundary: bool = True) -> None:
        with self._no_autocast():
            loss.backward()  # autograd accumulates into .grad: every call is a boundary
        self._norm = None

    def clip_grad_norm(self):
        import torch

        with self._no_autocast():
            self._norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        return self._norm

    def step(self):
        norm = self._norm if self._norm is not None else self.clip_grad_norm()
        with self._no_autocast():
            self.optimizer.step()
        self._norm = None
        return norm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def all_reduce_sum(self, x):
        return x

    def all_reduce_mean(self, x):
        return x

    def state_dict_for_save(self) -> dict:
        return self.module.state_dict()

    def finish(self) -> None:
        pass


class DeepSpeedEngine:
    """DeepSpeed ZeRO (0-3) around the caller's model and torch optimiser."""

    skips_nonfinite_step = True

    def __init__(self, model, optimizer, config: dict):
        import deepspeed
        import torch.distributed as dist

        _ensure_process_group()
        config = with_overflow_check(config)
        config.setdefault("zero_allow_untested_optimizer", True)
        if not dist.is_initialized():
            deepspeed.init_distributed(dist_backend=_default_backend(), verbose=False)
        self.config = config
        self.stage = int(config.get("zero_optimization", {}).get("stage", 0))
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                                                 config=config)
        self.module, self.forward_module = self.engine.module, self.engine
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_rank0 = self.rank == 0

    def backward(self, loss, boundary: bool = True) -> None:
        """``engine.backward``; ``boundary=False`` defers ZeRO's gradient reduction to a later call."""
        self.engine.set_gradient_accumulation_boundary(boundary)
        self.engine.backward(loss)

    def clip_grad_norm(self):
        return None  # DeepSpeed clips inside step()

    def step(self):
        """DeepSpeed's step; the global gradient norm. A non-finite norm must have been discarded:
        parameters that are not finite afterwards (on any rank) raise ``NonFiniteError``."""
        import math

        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        norm = None if norm is None else float(norm)
        if norm is not None and not math.isfinite(norm):
            self._check_update_discarded(norm)
        return norm

    def _check_update_discarded(self, norm: float) -> None:
        from nemotron_cascade.training.faults import NonFiniteError, nonfinite_tensors

        # ZeRO-3 keeps each rank's shard in ds_tensor (the module's parameters are empty placeholders)
        local = nonfinite_tensors((n, getattr(p, "ds_tensor", p)) for n, p in self.module.named_parameters())
        if not self.all_true(not local):
            raise NonFiniteError(f"DeepSpeed applied an update whose gradient norm is {norm}: non-finite "
                                 f"parameters {local[:5]} (rank {self.rank}); its overflow check must discard it")

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def all_reduce_sum(self, x):
        """The sum of ``x`` (a tensor, detached) over the ranks, the same on every rank."""
        import torch.distributed as dist

        x = x.detach().clone()
        dist.all_reduce(x)
        return x

    def all_reduce_mean(self, x):
        return self.all_reduce_sum(x) / self.world_size

    def state_dict_for_save(self) -> dict:
        """The full state dict (fp32 master weights are the module's under ZeRO-0/1/2).

        Under ZeRO-3 every rank must call this: the shards are all-gathered.
        """
        if self.stage < 3:
            return {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        import deepspeed

        params = dict(self.module.named_parameters())
        with deepspeed.zero.GatheredParameters(list(params.values())):
            full = {k: p.data.detach().clone() for k, p in params.items()}
        for k, b in self.module.named_buffers():
            full[k] = b.detach().clone()
        sd = self.module.state_dict(keep_vars=True)
        return {k: full[k] if k in full else v.detach().clone() for k, v in sd.items()}

    # -- mid-stage resume (training/resume.py: save_sharded, load_sharded) ------------------
    def save_checkpoint(self, directory: str, tag: str, client_state: dict) -> None:
        """DeepSpeed's ``save_checkpoint`` under ``directory/tag`` (every rank: its ZeRO shard; rank 0
        also the module and ``client_state``), without DeepSpeed's ``latest`` file: the caller commits.
        It ends with a barrier, so every rank's files are written when it returns."""
        self.engine.save_checkpoint(directory, tag=tag, client_state=client_state, save_latest=False)

    def load_checkpoint(self, directory: str, tag: str) -> dict:
        """Model and optimiser state (every rank its own shard) from ``directory/tag``; the
        ``client_state`` saved with it. The loop's LR scheduler is the caller's: not loaded here."""
        path, client_state = self.engine.load_checkpoint(directory, tag=tag, load_optimizer_states=True,
                                                         load_lr_scheduler_states=False)
        if path is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint {tag!r} in {directory}")
        return client_state

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def broadcast_from_rank0(self, obj):
        """Rank 0's ``obj`` (any picklable object) on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (the same answer on every rank)."""
        import torch

        bad = torch.tensor([0.0 if flag else 1.0], device=self.engine.device)
        return float(self.all_reduce_sum(bad)) == 0.0

    def finish(self) -> None:
        """Leave ``module`` a plain, full torch module (ZeRO-3: gathered, hooks removed)."""
        import torch

        full = self.state_dict_for_save() if self.stage >= 3 else None
        self.engine.destroy()
        if full is None:
            return
        for name, module in self.module.named_modules():
            for pname, p in list(module._parameters.items()):
                if p is not None:
                    key = f"{name}.{pname}" if name else pname
                    module._parameters[pname] = torch.nn.Parameter(full[key], requires_grad=p.requires_grad)
        # ties (e.g. tied embeddings) share one Parameter again
        if hasattr(self.module, "tie_weights"):
            self.module.tie_weights()


def _default_backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def gradient_checkpointing(model, enabled: bool):
    """Activation (gradient) checkpointing on ``model`` while a loop trains, off again afterwards so
    the saved checkpoint and later generation see the plain model. Layers' activations are
    recomputed in the backward pass instead of kept: memory for compute, the same gradients.
    Works with every engine (DeepSpeed wraps the module that already checkpoints)."""
    if not enabled:
        yield
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"gradient_checkpointing: {type(model).__name__} does not support it")
    from nemotron_cascade import compat  # the name differs between transformers 5.20 and 5.24

    compat.activation_checkpointing_enable(model, use_reentrant=False)
    try:
        yield
    finally:
        compat.activation_checkpointing_disable(model)


def launched_world_size() -> int:
    """The data-parallel world size this process was launched with (``torchrun``/``deepspeed`` set
    ``WORLD_SIZE``; 1 when not launched), known before any engine exists."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def with_overflow_check(config: dict) -> dict:
    """``config`` (a copy) with ``bf16.check_grad_overflow`` on when bf16 is enabled: a step whose
    gradient is not finite is then discarded by DeepSpeed (a ZeRO bf16 optimiser with the check
    off applies it), which the loops' non-finite-step guard needs."""
    config = dict(config)
    bf16 = dict(config.get("bf16") or {})
    if bf16.get("enabled"):
        if bf16.get("check_grad_overflow") is False:
            log.warning("DeepSpeed config: bf16.check_grad_overflow false overridden (a NaN step must be discarded)")
        config["bf16"] = {**bf16, "check_grad_overflow": True}
    return config


def make_loop_engine(kind: str, model, optimizer, config, grad_clip: float, micro_batch: int, precision=None):
    """:func:`make_engine` for a loop that accumulates its own micro-batches (``backward(boundary=)``):
    DeepSpeed's ``auto`` batch sizes become ``micro_batch`` per rank, no accumulation of its own,
    and ``micro_batch`` × world size in all. ``config`` is ignored by ``torch``; ``precision`` (a
    :class:`~nemotron_cascade.training.placement.Precision`) is the torch engine's only."""
    if kind == "torch":
        return TorchEngine(model, optimizer, grad_clip, precision)
    ds_cfg = fill_auto(load_deepspeed_config(config), {
        "train_micro_batch_size_per_gpu": micro_batch, "gradient_accumulation_steps": 1,
        "train_batch_size": micro_batch * launched_world_size()})
    return make_engine(kind, model, optimizer, ds_cfg, grad_clip=grad_clip)


def make_engine(kind: str, model, optimizer, config: dict | str | None = None, grad_clip: float = 1.0,
                profile: str = "gpu"):
    """A training engine of ``kind`` (``torch`` or ``deepspeed``) around ``model`` and ``optimizer``.

    ``config`` is the DeepSpeed config (dict, JSON path, or ``zero2``/``zero3`` in
    ``conf/<profile>/deepspeed/``); ignored by ``torch``. ``grad_clip`` fills an ``"auto"``
    ``gradient_clipping``.
    """
    if kind == "torch":
        return TorchEngine(model, optimizer, grad_clip)
    if kind == "deepspeed":
        cfg = fill_auto(load_deepspeed_config(config, profile), {"gradient_clipping": grad_clip})
        return DeepSpeedEngine(model, optimizer, cfg)
    raise ValueError(f"unknown training engine {kind!r}; expected one of {KINDS}")
