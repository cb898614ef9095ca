"""Code training sources (stdin/stdout problems only): TACO, APPS, OpenCodeReasoning (no tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nemotron_cascade.data.sources.fields import RowError, json_of, references, text_of, with_references


def stdio_text(value: Any, name: str, what: str, i: int) -> str:
    """One stdin or stdout text: a string, or a list of lines (joined, newline-terminated)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(v.rstrip("\n") for v in value) + "\n"
    if not isinstance(value, str):
        raise RowError(name, f"{what}[{i}] is a {type(value).__name__}, not stdin/stdout text")
    return value


def parse_io_tests(raw: Mapping, name: str = "input_output") -> list[dict]:
    """APPS/TACO ``input_output``: JSON ``{"inputs": [...], "outputs": [...]}`` of stdin/stdout
    texts, as stdin/stdout tests. Call-based problems (``fn_name``) are rejected."""
    data = json_of(raw, name)
    if not isinstance(data, dict):
        raise RowError(name, f"expected a JSON object with 'inputs' and 'outputs', got {type(data).__name__}")
    if data.get("fn_name"):
        raise RowError(name, f"call-based problem (fn_name={data['fn_name']!r}): the code verifier "
                             "runs stdin/stdout programs only")
    inputs, outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise RowError(name, "'inputs' and 'outputs' must be lists")
    if len(inputs) != len(outputs):
        raise RowError(name, f"{len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise RowError(name, "no tests")
    return [{"input": stdio_text(x, name, "inputs", i), "output": stdio_text(y, name, "outputs", i)}
            for i, (x, y) in enumerate(zip(inputs, outputs))]


def _first_solution(raw: Mapping) -> str | None:
    """The first reference solution of ``solutions`` (JSON list of programs), if readable."""
    try:
        solutions = json_of(raw, "solutions")
    except RowError:
        return None
    return solutions[0] if isinstance(solutions, list) and solutions and isinstance(solutions[0], str) else None


def code_block(program: str) -> str:
    """A program as the project's code answer writes it (a fenced ``python`` block)."""
    return f"```python\n{program.rstrip()}\n```"


def _code_task(raw: Mapping, origin: Any) -> dict:
    """A stdin/stdout task; its first reference solution, if any, as ``solution`` and as the
    ``plain`` reference response (the program in a code block: a human solution has no trace)."""
    tests = parse_io_tests(raw)
    task = {"prompt": text_of(raw, "question"), "tests": tests, "verifiable": True,
            "difficulty": raw.get("difficulty"), "origin": origin}
    solution = _first_solution(raw)
    if solution and solution.strip():
        task["solution"] = solution
        task = with_references(task, {"plain": code_block(solution)})
    return task


def map_taco(raw: Mapping) -> dict:
    """BAAI/TACO, split ``train``.

    Columns from the dataset card ("Dataset Structure"): ``question``, ``solutions`` (JSON list),
    ``starter_code``, ``input_output`` (JSON ``{"inputs", "outputs"[, "fn_name"]}``), ``difficulty``,
    ``raw_tags``, ``name``, ``source``, ``tags``, ``skill_types``, ``url``, ``Expected Auxiliary
    Space``, ``time_limit``, ``date``, ``picture_num``, ``memory_limit``, ``Expected Time Complexity``.
    """
    return _code_task(raw, raw.get("source"))


def map_apps(raw: Mapping) -> dict:
    """codeparrot/apps, split ``train``.

    Columns from the dataset card: ``problem_id``, ``question``, ``solutions`` (JSON list),
    ``input_output`` (JSON ``{"inputs", "outputs"[, "fn_name"]}``), ``difficulty``, ``url``,
    ``starter_code``.
    """
    return _code_task(raw, raw.get("url"))


def map_open_code_reasoning(raw: Mapping) -> dict:
    """nvidia/OpenCodeReasoning, config/split ``split_0``.

    Columns from the dataset card: ``id``, ``input`` (the question), ``output`` (R1's response),
    ``source``, ``license``, ``dataset`` (taco/apps/code_contests/open-r1/codeforces), ``split``,
    ``difficulty``, ``solution`` (the response's code); ``split_1`` adds ``index`` and has ``"-"`` as
    ``input`` ("an index to retrieve the input question from APPS/TACO"): such rows are rejected
    until joined. No tests: ``tests: []``, ``verifiable: False`` (SFT prompts only).
    ``reference_responses``: ``output`` (R1's ``<think>`` trace then the code) as ``thinking``.
    """
    prompt = text_of(raw, "input")
    if prompt.strip() == "-":
        raise RowError("input", f"placeholder '-': the question must first be joined from "
                                f"{raw.get('dataset')!r} row {raw.get('index')!r} (split_1)")
    origin = {k: raw.get(k) for k in ("dataset", "split", "index") if raw.get(k) is not None}
    task = {"prompt": prompt, "tests": [], "verifiable": False, "difficulty": raw.get("difficulty"), "origin": origin}
    if isinstance(raw.get("solution"), str) and raw["solution"].strip():
        task["solution"] = raw["solution"]
    return with_references(task, references(raw.get("output")))
