"""Which tensors a training step touches, and whether any was left on the host.

:class:`DeviceAudit` is a ``TorchFunctionMode``: inside it every torch function and tensor method
(forward passes, losses, the optimiser's ops; autograd's backward kernels are not Python calls)
is checked before it runs. A finding names the parameter or buffer, or the tensor's shape, the
operation and the project line that called it:

* an operation that mixes a tensor on the model's device with a host tensor of more than one
  element (a 0-dim host scalar is allowed, as CUDA allows it); copies between devices
  (``to``, ``copy_``, index assignment) are what placement is made of and are not findings;
* a parameter or buffer of the audited model that is not on the device when an operation uses it.

On an accelerator (``real``) a tensor is where ``tensor.device`` says. On the CPU there is no
second device, so the audit keeps one for the step (``virtual``): tensors the model holds, tensors
moved with ``.to(<device>)`` (a copy, as on a GPU), tensors created with an explicit ``device=`` and
everything computed from them are *on the device*; tensors created without a device (``torch.tensor``
of a Python list, ``torch.zeros(n)``) or brought back with ``.cpu()`` are *on the host*. A step that
forgets to move a batch then fails on the CPU exactly where it would fail (or silently copy) on a GPU.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

PACKAGE = str(Path(__file__).resolve().parents[1])
LIBRARIES = ("site-packages", "dist-packages", str(Path(torch.__file__).parent))
# cross-device by design: moving, copying and assigning into a tensor
MOVES = {"to", "copy_", "__setitem__", "cpu", "cuda", "__get__", "__set__", "tolist", "item", "numpy"}
ON, HOST = "device", "host"


@dataclass
class Finding:
    """One tensor found away from the device: what it was, the operation, where it was called."""

    what: str
    op: str
    where: str

    def __str__(self) -> str:
        return f"{self.what} in {self.op} (at {self.where})"


def _call_site() -> str:
    """The innermost project line (outside this module) on the stack, else the innermost line
    outside installed libraries (the caller's), else the innermost one."""
    frames = [f for f in traceback.extract_stack() if not f.filename.endswith("device_audit.py")]
    own = [f for f in frames if f.filename.startswith(PACKAGE)]
    caller = [f for f in frames if not any(d in f.filename for d in LIBRARIES)]
    f = (own or caller or frames)[-1]
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


@dataclass(eq=False)
class DeviceAudit(TorchFunctionMode):
    """Audit every operation run inside ``with DeviceAudit(model, device):``; see the module docstring."""

    model: object
    device: str
    virtual: bool | None = None  # None: virtual on the CPU, real on an accelerator
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self):
        super().__init__()
        self.device = torch.device(self.device)
        if self.virtual is None:
            self.virtual = self.device.type == "cpu"
        self._names, self._where = WeakIdKeyDictionary(), WeakIdKeyDictionary()
        for name, t in (*self.model.named_parameters(), *self.model.named_buffers()):
            self._names[t] = name
            self._where[t] = ON

    def label(self, t) -> str | None:
        """``device``, ``host``, or ``None`` (virtual: a tensor the step did not make, e.g. autograd's)."""
        if not self.virtual:
            return ON if t.device == self.device else HOST
        return self._where.get(t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if name not in MOVES:
            self._check(name, inputs)
        out = func(*args, **kwargs)
        if self.virtual:
            out = self._mark(name, args, kwargs, inputs, out)
        return out

    def _check(self, op: str, inputs: list) -> None:
        labels = [self.label(t) for t in inputs]
        for t, lab in zip(inputs, labels):
            if t in self._names and lab != ON:
                self.findings.append(Finding(f"{self._names[t]} ({tuple(t.shape)}, on {t.device})", op, _call_site()))
        if ON in labels:
            for t, lab in zip(inputs, labels):
                if lab == HOST and t.dim() > 0 and t not in self._names:
                    kind = "a host tensor" if self.virtual else f"a tensor on {t.device}"
                    self.findings.append(Finding(f"{kind} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} "
                                                 f"beside tensors on {self.device}", op, _call_site()))

    def _mark(self, op: str, args, kwargs, inputs: list, out):
        """Virtual mode: the labels of ``out`` (a ``.to(<device>)`` returns a copy, as a real device would)."""
        like = next((a for a in (*args[1:], kwargs.get("other")) if isinstance(a, torch.Tensor)), None)
        if op == "to" and like is not None:  # .to(other): where other is
            label = self._where.get(like)
        elif op in ("to", "cuda") and _moves_to_device(op, args[1:], kwargs):
            if isinstance(out, torch.Tensor) and any(out is t for t in inputs):
                out = out.clone()
            label = ON
        elif op == "cpu" or (op == "to" and _moves_to_cpu(args[1:], kwargs)):
            label = HOST
        else:
            labels = {self._where.get(t) for t in inputs}
            label = ON if ON in labels or (not inputs and kwargs.get("device") is not None) else \
                HOST if HOST in labels or not inputs else None
        if label is not None:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t not in self._names:
                    self._where[t] = label
        return out

    def report(self, limit: int = 10) -> str:
        """The findings, one a line (the first ``limit`` distinct ones and a count of the rest)."""
        distinct = list(dict.fromkeys(str(f) for f in self.findings))
        more = f"\n... and {len(distinct) - limit} more" if len(distinct) > limit else ""
        return "\n".join(distinct[:limit]) + more


def _moves_to_device(op: str, args, kwargs) -> bool:
    """Whether a ``to``/``cuda`` call names a target device (virtual mode: the model's)."""
    if op == "cuda":
        return True
    targets = [*args, kwargs.get("device")]
    return any(isinstance(a, (torch.device, str)) for a in targets if a is not None) and not _moves_to_cpu(args, kwargs)


def _moves_to_cpu(args, kwargs) -> bool:
    """Whether a ``to`` call names the CPU literally (``"cpu"``): virtual mode's way back to the host."""
    return any(a == "cpu" for a in (*args, kwargs.get("device")) if isinstance(a, str))
