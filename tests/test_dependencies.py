"""The package declares what it imports: a module imported at import time is a dependency (what
`make run` installs); one imported only inside a function may come from the ``gpu`` extra instead."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

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
