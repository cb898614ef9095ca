"""Where a stage's model runs (the ``device`` setting) and in which precision it trains.

**Device.** One setting, ``device`` in ``conf/<env>/globals.yml``. Every stage block that runs a
model reads it (``device: ${runtime_params:device,${globals:device}}``), so ``kedro run --params
device=cuda:1`` overrides it for a run. Values:

* ``auto`` (default): CUDA when torch sees a GPU, else the CPU; in a launched rank (``LOCAL_RANK``
  set) that rank's GPU;
* ``cpu``; ``cuda`` (the current CUDA device); ``cuda:N``.

A node declares its stage's device with :func:`scope`; the training loop
(:func:`~nemotron_cascade.training.loop.train_loop`) places the model there once, when the stage
starts (:func:`place`), and everything the stage's step touches follows the model: batches
(``.to(next(model.parameters()).device)`` in the step code), HF rollouts (``HFGenerator`` moves its
inputs to ``model.device``), the reward model (placed where the stage runs) and the LLM judge (it
asks a generator, which runs where its model is). Evaluation and the localisation guesses place
their model themselves (no loop there). Under DeepSpeed the engine places the model itself (each
rank on its ``LOCAL_RANK``'s GPU): the loop does not move it. Checkpoints are saved from wherever
the model is and load onto the CPU until the next stage places them.

**Precision.** The configured compute dtype is the dtype the model arrives in: ``base_model.dtype``
for the pretrained model, and a checkpoint loads in the dtype it was saved in (or, explicitly,
``LoopSettings.compute_dtype``). :class:`Precision` is what the loop does with it:

* ``float32`` (the embedded default): nothing — no cast, no autocast; the code path and its numbers
  are those of a loop without this module;
* ``bfloat16`` on the ``torch`` engine — mixed precision: the trained module's bf16 parameters and
  buffers become fp32 master weights (AdamW's moments follow them: fp32), each step's forward passes
  (and HF rollouts) run under ``torch.autocast(device_type, dtype=bfloat16)`` (bf16 matmuls, bf16
  activations), backward and the optimiser step outside it, and at the end the module goes back to
  bf16, so the checkpoint is saved in the configured dtype. Memory per parameter: 4 B weight + 4 B
  gradient + 8 B Adam moments, activations in bf16. A pure-bf16 AdamW step loses an update smaller
  than half a bf16 ulp of the weight (lr 2e-6 against weights ~1e-2 rounds away; the fp32 master keeps it);
* ``bfloat16`` under DeepSpeed with ``bf16.enabled``: DeepSpeed keeps its own fp32 master copy in
  its optimiser and runs the module in bf16: the loop adds nothing. DeepSpeed without ``bf16``:
  the module trains in fp32 (master weights, no autocast);
* ``float16`` is refused: without a loss scaler its gradients underflow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_SCOPE: ContextVar[str] = ContextVar("nemotron_cascade_device", default="auto")
COMPUTE_DTYPES = ("float32", "bfloat16")


def check_device(setting: str, where: str = "device") -> str:
    """``setting`` if it is a valid device setting, else a ``ValueError`` naming ``where``."""
    if not isinstance(setting, str) or not DEVICE_PATTERN.match(setting):
        raise ValueError(f"{where} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {setting!r}")
    return setting


def resolve_device(setting: str | None = None) -> str:
    """The device a setting means here, as ``cpu`` or ``cuda:N``; ``None``: the current :func:`scope`'s.

    ``auto`` is ``cuda:<LOCAL_RANK>`` in a launched rank, the current CUDA device otherwise, and the
    CPU when torch sees no GPU. Asking for CUDA where there is none is an error, not a silent CPU run.
    """
    import torch

    setting = check_device(_SCOPE.get() if setting is None else setting)
    if setting == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        if setting == "auto":
            return "cpu"
        raise ValueError(f"device {setting!r}: torch {torch.__version__} sees no CUDA GPU "
                         f"(cuda build {torch.version.cuda}); use device: auto or cpu")
    if setting == "auto":
        local = os.environ.get("LOCAL_RANK")
        return f"cuda:{int(local)}" if local is not None else f"cuda:{torch.cuda.current_device()}"
    if setting == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    if int(setting.split(":")[1]) >= torch.cuda.device_count():
        raise ValueError(f"device {setting!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return setting


def current_device() -> str:
    """The resolved device of the current :func:`scope` (``auto`` outside any)."""
    return resolve_device(None)


@contextlib.contextmanager
def scope(setting: str):
    """Run a stage on ``setting`` (checked and resolved at entry); yields the resolved device."""
    device = resolve_device(setting)
    token = _SCOPE.set(setting)
    try:
        yield device
    finally:
        _SCOPE.reset(token)


def place(model, device: str | None = None):
    """Move ``model`` to ``device`` (resolved; default the current scope's) unless it is there; ``model``."""
    import torch

    target = torch.device(resolve_device(device))
    if any(t.device != target for t in (*model.parameters(), *model.buffers())):
        log.info("placing %s on %s", type(model).__name__, target)
        model.to(target)
    return model


@dataclass(frozen=True)
class Precision:
    """How a loop trains: its compute dtype, and whether the loop keeps fp32 master weights and autocasts."""

    compute_dtype: str = "float32"
    device_type: str = "cpu"
    master_weights: bool = False  # the loop upcasts bf16 parameters to fp32 and casts them back at the end
    autocast: bool = False  # forward passes under torch.autocast(compute_dtype)

    def forward_context(self):
        """``torch.autocast`` in the compute dtype for mixed precision, else a no-op context."""
        import torch

        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=getattr(torch, self.compute_dtype))

    def outside_autocast(self):
        """Backward and the optimiser step: autocast off (``None`` without mixed precision)."""
        import torch

        return torch.autocast(self.device_type, enabled=False) if self.autocast else None


def dtype_name(model) -> str:
    """The floating dtype of ``model``'s parameters (``float32`` when it has none)."""
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return "float32" if p is None else str(p.dtype).removeprefix("torch.")


def precision_for(model, device: str, engine: str, deepspeed_bf16: bool, compute_dtype: str | None = None) -> Precision:
    """The :class:`Precision` of a loop training ``model`` on ``device`` with ``engine``;
    ``compute_dtype`` ``None``: the model's own dtype (see the module docstring)."""
    dtype = compute_dtype or dtype_name(model)
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute dtype {dtype!r} is not supported: use one of {COMPUTE_DTYPES} "
                         "(float16 would need a loss scaler)")
    device_type = device.split(":")[0]
    if dtype == "float32":
        return Precision("float32", device_type)
    if engine == "torch":
        return Precision(dtype, device_type, master_weights=True, autocast=True)
    if not deepspeed_bf16:  # DeepSpeed in fp32: train fp32 master weights, nothing else
        log.warning("the model is %s but the DeepSpeed config has no bf16 block: training in float32", dtype)
        return Precision("float32", device_type, master_weights=True)
    return Precision(dtype, device_type)  # DeepSpeed's bf16 keeps the fp32 master copy itself


def floating_dtypes(model) -> dict[str, object]:
    """The dtype of every floating parameter and buffer of ``model``, by name (for :func:`restore_dtypes`)."""
    return {name: t.dtype for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_floating_point()}


def upcast(model) -> None:
    """Every half-precision floating parameter and buffer of ``model`` to fp32, in place (the same
    ``Parameter`` objects, so an optimiser built afterwards holds fp32 master weights)."""
    import torch

    for _, t in (*model.named_parameters(), *model.named_buffers()):
        if t.is_floating_point() and t.dtype != torch.float32:
            t.data = t.data.float()


def restore_dtypes(model, dtypes: dict[str, object]) -> None:
    """Cast every parameter and buffer whose dtype differs from ``dtypes`` back (the configured
    dtype the checkpoint is saved in: an upcast module, or one DeepSpeed's bf16 turned into bf16)."""
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if name in dtypes and t.dtype != dtypes[name]:
            t.data = t.data.to(dtypes[name])
