"""swe: a tiny repository, an issue, a gold unified diff, the file to localise.

The repository's modules are named ``mod1.py`` .. ``mod8.py`` (:func:`number_modules`): the tiny
model copies digits from its prompt (math trains that) but not rare name tokens — with the
modules' own names its next-token probability of the right file after ``def add is in:\\n[`` was
0.123 for 8 modules, i.e. none, while its patches were otherwise right.
"""

from __future__ import annotations

import ast
import difflib
import random
import re

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import Domain, TeacherStyle

_FUNCS = [  # (name, args, correct body line, buggy body line, example call, expected)
    ("add", "a, b", "return a + b", "return a - b", "add(2, 3)", "5"),
    ("sub", "a, b", "return a - b", "return b - a", "sub(5, 3)", "2"),
    ("mul", "a, b", "return a * b", "return a + b", "mul(3, 4)", "12"),
    ("half", "n", "return n // 2", "return n // 3", "half(8)", "4"),
    ("double", "n", "return n * 2", "return n * 3", "double(4)", "8"),
    ("square", "n", "return n * n", "return n + n", "square(3)", "9"),
    ("is_even", "n", "return n % 2 == 0", "return n % 2 == 1", "is_even(4)", "True"),
    ("is_pos", "n", "return n > 0", "return n < 0", "is_pos(2)", "True"),
    ("last", "xs", "return xs[-1]", "return xs[0]", "last([1, 2])", "2"),
    ("first", "xs", "return xs[0]", "return xs[1]", "first([1, 2])", "1"),
    ("count", "xs", "return len(xs)", "return len(xs) - 1", "count([1, 2])", "2"),
    ("total", "xs", "return sum(xs)", "return max(xs)", "total([1, 2])", "3"),
    ("biggest", "xs", "return max(xs)", "return min(xs)", "biggest([1, 2])", "2"),
    ("shout", "s", "return s.upper()", "return s.lower()", "shout('hi')", "'HI'"),
    ("inc", "n", "return n + 1", "return n - 1", "inc(1)", "2"),
    ("neg", "n", "return -n", "return n", "neg(2)", "-2"),
]
_MODULES = ["calc", "tools", "util", "core", "helpers", "mathx", "ops", "basic"]
_PY_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def named_task(r: random.Random) -> dict:
    """A task with the world's module names (``calc.py``, ...): three modules of two functions,
    one function broken in the first, the issue naming it, and the gold patch. Its ``key`` (the
    problem: ids and splits) uses these names."""
    modules = r.sample(_MODULES, 3)
    files = {}
    chosen = r.sample(range(len(_FUNCS)), 6)
    for i, mod in enumerate(modules):
        files[f"{mod}.py"] = [_FUNCS[j] for j in chosen[2 * i: 2 * i + 2]]
    target_file = f"{modules[0]}.py"
    bug = files[target_file][r.randrange(2)]
    repo = {path: _render_module(funcs, bug if path == target_file else None) for path, funcs in files.items()}
    fixed = _render_module(files[target_file], None)
    gold = make_patch(target_file, repo[target_file], fixed)
    name, _, _, _, call, expected = bug
    issue = f"{name} is wrong: {call} should return {expected}."
    return {"prompt": issue, "repo": repo, "file": target_file, "gold_patch": gold,
            "key": f"{target_file}|{'|'.join(sorted(f[0] for fs in files.values() for f in fs))}|{name}"}


def _render_module(funcs: list[tuple], bug: tuple | None) -> str:
    out = []
    for f in funcs:
        name, args, good, bad, *_ = f
        out.append(f"def {name}({args}):\n    {bad if f is bug else good}\n")
    return "\n".join(out)


def make_patch(path: str, before: str, after: str) -> str:
    """A minimal unified diff (no context lines) from ``before`` to ``after``."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), f"a/{path}", f"b/{path}",
                                 n=0, lineterm="")
    return "\n".join(lines) + "\n"


def number_modules(row: dict) -> dict:
    """``row`` with its modules renamed ``mod<k>.py`` (the k-th of the world's module names) in its
    repository, file and gold patch; everything else (the problem, key or id, split) unchanged."""
    names = {f"{m}.py": f"mod{k + 1}.py" for k, m in enumerate(_MODULES)}
    rename = lambda p: names.get(p, p)  # noqa: E731
    patch = row["gold_patch"].replace(f"a/{row['file']}", f"a/{rename(row['file'])}") \
        .replace(f"b/{row['file']}", f"b/{rename(row['file'])}")
    return {**row, "repo": {rename(p): text for p, text in row["repo"].items()}, "file": rename(row["file"]),
            "gold_patch": patch}


def task(r: random.Random) -> dict:
    """A task (:func:`named_task`) with numbered modules (:func:`number_modules`)."""
    return number_modules(named_task(r))


def swe_context_files(row: dict) -> list[str]:
    """The files a SWE prompt shows, best first: the localised ``context_files`` (curation's
    localisation node) or, for rows not localised, the buggy file alone (oracle localisation)."""
    return list(row.get("context_files") or [row["file"]])


def swe_prompt(row: dict, files: list[str] | None = None) -> str:
    """The SWE prompt: the issue and the content of the localised files (or of ``files``)."""
    shown = files if files is not None else swe_context_files(row)
    blocks = "\n".join(f"[{p}]\n{row['repo'][p]}" for p in shown)
    return f"Issue: {row['prompt']}\n{blocks}\nWrite a patch that fixes the issue."


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """The trace finds the function the issue names and the file it is in, then the patch. It names
    the file shown above the definition in the prompt's own line form ``\\n[path]`` (the same
    tokens, so the path can be copied token for token: a space before the bracket would make it
    another token)."""
    answer = f"```diff\n{row['gold_patch']}```"
    name = row["prompt"].split(" is wrong")[0]
    trace = f"def {name} is in:\n[{row['file']}]"
    return chat.thinking_response(trace, answer) if thinking else answer


def sample_problem(sample: dict, row: dict) -> str | None:
    """The SWE filter of a teacher sample answering ``row``: localisation recall below 1.0 (the gold
    file is not among the prompt's context files), or a python block of the response that does not
    parse."""
    context = row.get("context_files")
    if context is not None and row["file"] not in context:
        return f"localisation recall 0: gold file {row['file']} not among the context files {context}"
    for i, block in enumerate(_PY_BLOCK.findall(sample["messages"][-1]["content"])):
        try:
            ast.parse(block)
        except SyntaxError as e:
            return f"python block {i + 1} does not parse (line {e.lineno}: {e.msg})"
    return None


DOMAIN = Domain("swe", task, respond, verifier="swe", prompt=swe_prompt, context_files=swe_context_files,
                sample_check=sample_problem, judge="patch")
