"""The CPU-kernel pin: which variables it sets, when it leaves the machine alone, and that torch
really runs the pinned kernels once the package is imported first."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from nemotron_cascade import numerics

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2"}


@pytest.mark.parametrize(
    "env, machine, added, why",
    [
        ({}, "x86_64", AVX2, "default: the AVX2 paths on x86"),
        ({"NEMOTRON_CASCADE_CPU_ISA": "AVX2 "}, "x86_64", AVX2, "case and spaces do not matter"),
        ({"NEMOTRON_CASCADE_CPU_ISA": "avx512"}, "x86_64",
         {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
          "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "the AVX-512 paths on request"),
        ({"NEMOTRON_CASCADE_CPU_ISA": "native"}, "x86_64", {}, "native: the libraries choose"),
        ({}, "aarch64", {}, "non-x86 machines are left alone"),
        ({"ATEN_CPU_CAPABILITY": "default"}, "x86_64", {k: v for k, v in AVX2.items() if k != "ATEN_CPU_CAPABILITY"},
         "a variable the user set wins"),
    ],
)
def test_pin_sets_only_what_is_unset(env, machine, added, why):
    before = dict(env)
    assert numerics.pin_cpu_kernels(env, machine=machine) == added, why
    assert env == {**before, **added}, why


def test_an_unknown_isa_names_the_variable():
    with pytest.raises(ValueError, match="NEMOTRON_CASCADE_CPU_ISA='sse9'"):
        numerics.pin_cpu_kernels({"NEMOTRON_CASCADE_CPU_ISA": "sse9"}, machine="x86_64")


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in AVX2 and k != "NEMOTRON_CASCADE_CPU_ISA"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True, timeout=120)


def _capability(code: str, env: dict) -> str:
    return _run(code, env).stdout.strip().splitlines()[-1]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the pin applies to x86 only")
def test_importing_the_package_first_pins_torch_to_avx2():
    code = "import nemotron_cascade, torch; torch.ones(2) + 1; print(torch.backends.cpu.get_cpu_capability())"
    assert _capability(code, {}) == "AVX2"
    native = _capability(code, {"NEMOTRON_CASCADE_CPU_ISA": "native"})
    assert native in {"AVX2", "AVX512", "DEFAULT"}  # whatever this processor offers


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the pin applies to x86 only")
def test_check_pin_reports_and_warns_when_torch_dispatched_first():
    native = _capability("import torch; print(torch.backends.cpu.get_cpu_capability())", {})
    late = ("import logging, torch; logging.basicConfig(); torch.ones(2) + 1\n"
            "import nemotron_cascade\nfrom nemotron_cascade.numerics import check_pin\nprint(check_pin())")
    out = _run(late, {})
    assert out.stdout.strip() == native  # too late to pin: torch keeps what it chose
    assert ("asks for AVX2" in out.stderr) == (native != "AVX2")
    early = _run("import nemotron_cascade, logging; logging.basicConfig()\n"
                 "from nemotron_cascade.numerics import check_pin\nprint(check_pin())", {})
    assert early.stdout.strip() == "AVX2" and "asks for" not in early.stderr
