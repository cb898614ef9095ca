"""Pin the CPU kernels' instruction set, so a seeded CPU run gives the same numbers on any x86 machine.

PyTorch picks its CPU kernels at run time from what the processor offers (AVX2 or AVX-512 for
ATen's vectorised ops; MKL and oneDNN dispatch on their own). The kernels round differently, and a
1 M-parameter model trained for minutes is chaotic: the same seed and code gave SFT stage 1
math/code/science 0.35/0.21/0.31 on an AVX2 machine and 0.28/0.14/0.34 on an AVX-512 one, and
every later stage drifted further (docs/experiments.md, "Reproducibility across machines").
Forcing the AVX2 paths on the AVX-512 machine reproduced the AVX2 machine's matrix to the last
digit, at no measurable cost for this model size.

So the package pins the kernels on import, before torch is loaded, unless the user chose otherwise:

* ``NEMOTRON_CASCADE_CPU_ISA=avx2`` (default): ATen, MKL and oneDNN use their AVX2 code paths
  (any x86-64 processor since 2013 has them);
* ``NEMOTRON_CASCADE_CPU_ISA=avx512``: the AVX-512 paths (reproducible among AVX-512 machines);
* ``NEMOTRON_CASCADE_CPU_ISA=native``: no pin (each library picks; fastest for large CPU work).

Variables the user already set win over the pin. Non-x86 machines are left alone. The pin only
takes effect when it happens before torch dispatches its first operator; :func:`cpu_capability`
reports what torch actually uses, and the tracking hook records it on every MLflow run.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

ISA_ENV = "NEMOTRON_CASCADE_CPU_ISA"
DEFAULT_ISA = "avx2"
_PINS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}
_X86 = frozenset({"x86_64", "amd64", "x64"})


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None, machine: str | None = None) -> dict[str, str]:
    """Set the kernel-selection variables for ``NEMOTRON_CASCADE_CPU_ISA`` (default ``avx2``) where
    they are unset; return the ones this call set. Raise ``ValueError`` naming the variable for an
    unknown value."""
    env = os.environ if environ is None else environ
    isa = requested_isa(env)
    if isa == "native":
        return {}
    if isa not in _PINS:
        raise ValueError(f"{ISA_ENV}={env.get(ISA_ENV)!r}: choose one of {sorted(_PINS) + ['native']}")
    if (machine or platform.machine()).lower() not in _X86:
        return {}
    added = {key: value for key, value in _PINS[isa].items() if key not in env}
    env.update(added)
    return added


def requested_isa(environ: MutableMapping[str, str] | None = None) -> str:
    """``NEMOTRON_CASCADE_CPU_ISA`` normalised (``avx2`` when unset)."""
    env = os.environ if environ is None else environ
    return env.get(ISA_ENV, DEFAULT_ISA).strip().lower()


def expected_capability(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The ATen capability the pin asks for (``"AVX2"``), or ``None`` when nothing is pinned."""
    env = os.environ if environ is None else environ
    value = env.get("ATEN_CPU_CAPABILITY")
    return value.upper() if value else None


def cpu_capability() -> str:
    """The instruction set torch's CPU kernels use in this process (``AVX2``, ``AVX512``, ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def check_pin() -> str:
    """torch's capability; logs a warning when it differs from the pin (torch ran an operator
    before this package was imported, so the run may not reproduce the documented numbers)."""
    actual, wanted = cpu_capability(), expected_capability()
    if wanted and actual.upper() != wanted and wanted != "DEFAULT":
        logger.warning(
            "torch's CPU kernels use %s but %s asks for %s: torch dispatched an operator before "
            "nemotron_cascade was imported, so results may differ from the README's. Import "
            "nemotron_cascade before torch, or set ATEN_CPU_CAPABILITY=%s in the environment.",
            actual, ISA_ENV, wanted, wanted.lower(),
        )
    return actual


def tags() -> dict[str, str]:
    """What decides a CPU run's numbers beyond seed and code, for the MLflow run: torch's version,
    the instruction set its kernels use, and the pin asked for."""
    import torch

    return {"numerics.torch": torch.__version__, "numerics.cpu_capability": check_pin(),
            "numerics.pin": requested_isa()}
