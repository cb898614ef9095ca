"""The code verifier: run the response's program on stdin/stdout tests in the sandbox.

A response earns 1.0 only when its final answer (after a closed ``</think>``, or the whole text when
there is no think block) holds a fenced Python program that passes every test; otherwise 0.0.
Outputs are compared line by line after trimming each line's trailing whitespace and dropping
trailing empty lines, and the number of lines must match (printing only a prefix earns nothing).
"""

from __future__ import annotations

import json
import logging
import os
import re
import textwrap
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from nemotron_cascade.rewards.answers import final_answer
from nemotron_cascade.rewards.sandbox import SandboxLimits, run_program

logger = logging.getLogger(__name__)

_PYTHON_TAGS = frozenset({"python", "py", "python3"})
# A fence opens at a line start (``` and an optional info string) and closes on a line of its own.
_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(?P<tag>[^\s`]*)[^\n`]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def code_reward(
    response: str, tests: list[dict], *, limits: SandboxLimits | None = None
) -> float:
    """1.0 when the response's final program passes every stdin/stdout test, else 0.0."""
    _check_tests(tests)
    program = extract_program(response)
    if program is None:
        return 0.0
    return _run_tests(program, tests, limits or SandboxLimits())


def batch_code_reward(
    responses: list[str],
    tests_list: list[list[dict]],
    max_workers: int | None = None,
    *,
    limits: SandboxLimits | None = None,
) -> list[float]:
    """:func:`code_reward` for many responses, run in parallel; results keep the input order."""
    if len(responses) != len(tests_list):
        raise ValueError(f"{len(responses)} responses but {len(tests_list)} test lists")
    for tests in tests_list:
        _check_tests(tests)
    if not responses:
        return []
    # A GRPO group often holds the same program several times: run each distinct (program, tests)
    # pair once. Programs are judged as deterministic (a program whose output depends on chance
    # gets one verdict for all its copies in the batch).
    keys = [(extract_program(r), json.dumps(t, sort_keys=True)) for r, t in zip(responses, tests_list)]
    unique = {k: t for k, t in zip(keys, tests_list) if k[0] is not None}
    workers = max_workers or os.cpu_count() or 1
    limits = limits or SandboxLimits()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="code-reward") as pool:
        verdicts = dict(zip(unique, pool.map(lambda k: _run_tests(k[0], unique[k], limits), unique)))
    return [verdicts.get(k, 0.0) for k in keys]


def extract_program(response: str) -> str | None:
    """The final answer's last ```python (or ```py) block, else its last bare ``` block."""
    answer = final_answer(response)
    if answer is None:
        return None
    blocks = [(m["tag"].lower(), m["body"]) for m in _FENCE.finditer(answer)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    bare = [body for tag, body in blocks if not tag]
    chosen = python or bare
    return textwrap.dedent(chosen[-1]) if chosen else None


def outputs_match(actual: str, expected: str) -> bool:
    """Line-by-line equality after trimming trailing whitespace; line counts must agree."""
    return _normalise_lines(actual) == _normalise_lines(expected)


def _normalise_lines(text: str) -> list[str]:
    """Lines with trailing whitespace removed and trailing empty lines dropped."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _check_tests(tests: Sequence[dict]) -> None:
    """Raise ValueError unless ``tests`` is a non-empty list of {"input": str, "output": str}."""
    if not isinstance(tests, (list, tuple)) or not tests:
        raise ValueError(f"tests must be a non-empty list of stdin/stdout cases: {tests!r:.200}")
    for i, test in enumerate(tests):
        if not isinstance(test, dict) or not all(
            isinstance(test.get(key), str) for key in ("input", "output")
        ):
            raise ValueError(f"test {i} must be {{'input': str, 'output': str}}, got {test!r:.200}")


def _run_tests(program: str, tests: Sequence[dict], limits: SandboxLimits) -> float:
    """Run ``program`` on each test in turn, stopping at the first failure."""
    for i, test in enumerate(tests):
        result = run_program(program, test["input"], limits)
        if not result.ok:
            logger.debug("test %d: program failed (%s): %.500s", i, result.reason, result.stderr)
            return 0.0
        if not outputs_match(result.stdout, test["output"]):
            logger.debug("test %d: wrong output %.200r", i, result.stdout)
            return 0.0
    return 1.0
