"""The longest functions and largest modules of a source tree, against the project's limits.

``python scripts/code_sizes.py [src] [--max-function 60] [--max-module 450]`` prints every function
and module over its limit, the longest function and the largest module, and exits 1 when anything is
over (``tests/test_code_shape.py`` runs it on ``src/``). A function's length counts its decorators'
line to its last line, docstring included.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def sizes(root: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(functions, modules)``: ``(lines, "path:line name")`` and ``(lines, "path")`` of every one."""
    functions, modules = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        modules.append((len(text.splitlines()), str(path)))
        for n in ast.walk(ast.parse(text)):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((n.end_lineno - n.lineno + 1, f"{path}:{n.lineno} {n.name}"))
    return functions, modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="src")
    parser.add_argument("--max-function", type=int, default=60)
    parser.add_argument("--max-module", type=int, default=450)
    args = parser.parse_args(argv)
    functions, modules = sizes(Path(args.root))
    over = [(n, w) for n, w in functions if n > args.max_function] + [(n, w) for n, w in modules if n > args.max_module]
    for n, where in sorted(over, reverse=True):
        print(f"over the limit: {n:5d} lines  {where}")
    print(f"longest function: {max(functions)[0]} lines ({max(functions)[1]}); limit {args.max_function}")
    print(f"largest module:   {max(modules)[0]} lines ({max(modules)[1]}); limit {args.max_module}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
