"""The package declares what it imports: a module imported at import time is a dependency (what
`make run` installs); one imported only inside a function may come from the ``gpu`` extra instead.

And the two environments hold together: requirements/cpu.txt (the constraints of `make setup`) and
requirements/gpu.txt (vLLM 0.33.0's set) both lie within pyproject's ranges, the GPU set meets
vLLM's own requirements, and the suite runs under a declared torch / transformers / numba."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nemotron_cascade"


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imports() -> dict[str, set[str]]:
    """Third-party top-level modules of ``src``: ``{"eager": ..., "lazy": ...}`` (lazy: inside a def)."""
    found: dict[str, set[str]] = {"eager": set(), "lazy": set()}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                mods = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                mods = [n.module]
            else:
                continue
            for mod in (m.split(".")[0] for m in mods):
                if mod not in sys.stdlib_module_names and mod != "nemotron_cascade":
                    found["lazy" if id(n) in lazy else "eager"].add(mod)
    return found


@functools.cache
def _packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def _distributions(module: str) -> set[str]:
    dists = _packages().get(module) or [module]  # not installed (vllm): by its name
    return {d.lower().replace("_", "-") for d in dists}


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    gpu = _names(project["optional-dependencies"]["gpu"])
    found = _imports()
    assert {"torch", "kedro", "numpy", "click"} <= found["eager"]
    undeclared = sorted(m for m in found["eager"] if not _distributions(m) & runtime)
    assert undeclared == [], f"imported when the package loads but not in [project] dependencies: {undeclared}"
    undeclared = sorted(m for m in found["lazy"] - found["eager"] if not _distributions(m) & (runtime | gpu))
    assert undeclared == [], f"imported in a function but in neither the dependencies nor the gpu extra: {undeclared}"


def test_the_test_stack_stays_out_of_what_running_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    assert not runtime & {"pytest", "pytest-timeout", "nbclient", "nbformat", "ipykernel", "deepspeed", "ruff"}
    assert {"pytest", "nbclient", "deepspeed", "ruff"} <= _names(project["optional-dependencies"]["test"])


# --- the two environments: requirements/cpu.txt (constraints of `make setup`) and requirements/gpu.txt


def _pins(path: Path) -> dict[str, str]:
    """``{distribution: version}`` of the ``name==version`` lines of a requirements file."""
    from packaging.requirements import Requirement

    pins = {}
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # one exact pin a line
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        name = req.name.lower().replace("_", "-")
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = spec.version
    return pins


def _requirements(section: list[str]) -> dict:
    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in section]
    return {r.name.lower().replace("_", "-"): r for r in reqs}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


CPU = _pins(ROOT / "requirements" / "cpu.txt")
GPU = _pins(ROOT / "requirements" / "gpu.txt")

# vLLM 0.33.0's own requirements (the Requires-Dist of its wheel's METADATA) that the project's
# dependencies also name: (distribution, specifier, why it matters)
VLLM_0_33 = [
    ("torch", "==2.14.0", "vLLM's kernels are built against one torch"),
    ("transformers", ">=5.16.1,<5.21.0", "the reason pyproject's transformers is a range, not 5.24.0"),
    ("numba", "==0.65.0", "the reason pyproject's numba is a range, not 0.68.1"),
    ("tokenizers", ">=0.23.2", "vLLM's detokeniser"),
    ("openai", ">=2.25.0", "vLLM's OpenAI-compatible server; the teachers' client is openai 3.63.0"),
    ("numpy", "<2.4", "mistral-common (a vLLM requirement) caps numpy below 2.4 on Python <= 3.12"),
]


@pytest.mark.parametrize("line, error", [
    ("transformers>=5.20", "not an exact pin"),      # a range in a pinned set pins nothing
    ("torch==2.13.0\ntorch==2.14.0", "twice"),      # two pins of one package: which one holds?
])
def test_a_requirements_file_that_pins_loosely_or_twice_is_refused(tmp_path, line, error):
    path = tmp_path / "r.txt"
    path.write_text(line + "\n")
    with pytest.raises(AssertionError, match=error):
        _pins(path)


@pytest.mark.parametrize("name, spec, why", VLLM_0_33, ids=[r[0] for r in VLLM_0_33])
def test_the_gpu_set_meets_what_vllm_requires(name, spec, why):
    from packaging.specifiers import SpecifierSet

    assert GPU["vllm"] == "0.33.0"
    assert name in GPU, f"requirements/gpu.txt does not pin {name} ({why})"
    assert GPU[name] in SpecifierSet(spec), f"gpu.txt's {name}=={GPU[name]} is outside vLLM 0.33.0's {spec}: {why}"


@pytest.mark.parametrize("env, pins", [("cpu", CPU), ("gpu", GPU)])
def test_both_environments_satisfy_the_declared_dependencies(env, pins):
    """Each pin of an environment lies in pyproject's range, so `pip install --no-deps -e .` over it
    (the gpu path) or `pip install -e . -c requirements/cpu.txt` (`make setup`) holds together."""
    runtime = _requirements(_project()["dependencies"])
    outside = {n: v for n, v in pins.items() if n in runtime and v not in runtime[n].specifier}
    assert outside == {}, f"requirements/{env}.txt pins outside pyproject's dependencies: {outside}"


def test_the_gpu_set_pins_every_runtime_dependency_and_the_gpu_extra():
    """requirements/gpu.txt is complete: every [project] dependency and every package of the gpu extra,
    the extra's own pins unchanged."""
    project = _project()
    assert sorted(set(_requirements(project["dependencies"])) - set(GPU)) == []
    extra = _requirements(project["optional-dependencies"]["gpu"])
    assert sorted(set(extra) - set(GPU)) == []
    assert {n: GPU[n] for n in extra if GPU[n] not in extra[n].specifier} == {}


def test_the_ranged_dependencies_are_pinned_in_the_cpu_constraints():
    """What pyproject gives as a range (for the GPU set) the CPU environment pins: a range there would
    let `make setup` pick a new torch (a CUDA wheel) or transformers on the next release."""
    ranged = {n for n, r in _requirements(_project()["dependencies"]).items()
              if any(s.operator != "==" for s in r.specifier) and "<" in str(r.specifier)}
    assert ranged == {"torch", "transformers", "numba"}
    assert ranged <= set(CPU)
    assert CPU["torch"] != GPU["torch"] and CPU["transformers"] != GPU["transformers"]


@pytest.mark.parametrize("name", ["torch", "transformers", "numba"])
def test_the_running_environment_is_a_supported_one(name):
    """The suite runs under a version pyproject declares (so a run under an undeclared transformers
    fails here first, not somewhere deep in a model test)."""
    version = md.version(name).split("+")[0]
    assert version in _requirements(_project()["dependencies"])[name].specifier
