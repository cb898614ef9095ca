"""What the code verifier rewards: the final answer's last Python program, passing every test.

These tests run real programs in the bubblewrap sandbox; without bwrap they fail with
SandboxUnavailableError, which says how to install it.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from nemotron_cascade.rewards.code import (
    batch_code_reward,
    code_reward,
    extract_program,
    outputs_match,
)

# Read two integers; print their sum, product and difference on three lines.
GOOD = "a, b = map(int, input().split())\nprint(a + b)\nprint(a * b)\nprint(a - b)\n"
TESTS = [
    {"input": "2 3\n", "output": "5\n6\n-1\n"},
    {"input": "10 -4\n", "output": "6\n-40\n14"},
]


def fenced(code: str, tag: str = "python") -> str:
    """``code`` inside a Markdown fence."""
    return f"```{tag}\n{code}```"


def answer(code: str, tag: str = "python") -> str:
    """A plain (non-thinking) answer with one fenced program."""
    return f"Here is my solution.\n\n{fenced(code, tag)}\n\nIt reads the two numbers."


READ = "a, b = map(int, input().split())\n"
REWARD_CASES = [
    # (reason, response, expected reward)
    ("correct program", answer(GOOD), 1.0),
    ("correct program after a closed think block",
     f"<think>\nsum, product, difference\n</think>\n\n{answer(GOOD)}", 1.0),
    ("closing tag only (opening tag was in the prompt)", f"plan...\n</think>\n{answer(GOOD)}", 1.0),
    ("wrong output", answer(READ + "print(a - b)\nprint(a * b)\nprint(a + b)\n"), 0.0),
    ("prints only the first of the lines", answer(READ + "print(a + b)\n"), 0.0),
    ("misses the middle line", answer(READ + "print(a + b)\nprint(a - b)\n"), 0.0),
    ("prints an extra line", answer(GOOD + "print(0)\n"), 0.0),
    ("prints everything on one line", answer(READ + "print(a + b, a * b, a - b)\n"), 0.0),
    ("leading whitespace is significant", answer(READ + "print('', a + b)\nprint(a * b)\nprint(a - b)\n"), 0.0),
    ("trailing spaces, tabs and blank lines are fine",
     answer(READ + "print(a + b, '  ')\nprint(str(a * b) + '\\t')\nprint(a - b)\nprint()\nprint('   ')\n"), 1.0),
    ("Windows line endings are fine",
     answer(READ + "import sys\nsys.stdout.write(f'{a+b}\\r\\n{a*b}\\r\\n{a-b}\\r\\n')\n"), 1.0),
    ("no code block", "The answer is a+b, a*b and a-b, printed on three lines.", 0.0),
    ("empty response", "", 0.0),
    ("unclosed think block", f"<think>\nlet me write it\n{fenced(GOOD)}\n", 0.0),
    ("think reopened after the last close", f"<think>x</think>{answer(GOOD)}<think>more", 0.0),
    ("code inside the think block only", f"<think>\n{fenced(GOOD)}\n</think>\nSee above.", 0.0),
    ("last block wins (last is correct)", answer("print('draft')\n") + "\nFixed:\n" + fenced(GOOD), 1.0),
    ("last block wins (last is wrong)", answer(GOOD) + "\nShorter:\n" + fenced(READ + "print(a+b)\n"), 0.0),
    ("```py fence accepted", answer(GOOD, tag="py"), 1.0),
    ("bare fence accepted when no python fence", answer(GOOD, tag=""), 1.0),
    ("python fence preferred over a later bare fence", answer(GOOD) + "\nOutput:\n```\n5\n6\n-1\n```", 1.0),
    ("other languages ignored", answer("int main() { return 0; }\n", tag="cpp"), 0.0),
    ("syntax error", answer("def f(:\n    pass\n"), 0.0),
    ("runtime error after the right output", answer(GOOD + "raise SystemExit(1)\n"), 0.0),
    ("uncaught exception", answer("print(1 // 0)\n"), 0.0),
    ("exit(0) after the right output is a clean exit", answer(GOOD + "exit(0)\n"), 1.0),
    ("main guard and a function", answer("def main():\n" + textwrap.indent(GOOD, "    ")
                                          + "\nif __name__ == '__main__':\n    main()\n"), 1.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("response", "expected"),
    [pytest.param(r, e, id=reason) for reason, r, e in REWARD_CASES],
)
def test_code_reward(response: str, expected: float) -> None:
    """Each response earns exactly the reward its reason says."""
    assert code_reward(response, TESTS) == expected


def test_every_test_must_pass() -> None:
    """A program special-cased to the first test earns nothing."""
    cheat = READ + "print(5)\nprint(6)\nprint(-1)\n"
    assert code_reward(answer(cheat), TESTS[:1]) == 1.0
    assert code_reward(answer(cheat), TESTS) == 0.0


@pytest.mark.parametrize(
    "tests",
    [
        pytest.param([], id="empty list"),
        pytest.param(None, id="None"),
        pytest.param([{"input": "1"}], id="missing output"),
        pytest.param([{"input": 1, "output": "1"}], id="non-string input"),
        pytest.param(["1 2"], id="not a dict"),
    ],
)
def test_bad_tests_are_loud(tests) -> None:
    """Malformed test lists raise instead of silently scoring 0."""
    with pytest.raises(ValueError):
        code_reward(answer(GOOD), tests)


@pytest.mark.parametrize(
    ("actual", "expected", "match", "reason"),
    [
        ("1\n2\n", "1\n2", True, "final newline optional"),
        ("1  \n2\t\n\n\n", "1\n2\n", True, "trailing whitespace and blank lines ignored"),
        ("1\n", "1\n2\n", False, "missing line"),
        ("1\n2\n3\n", "1\n2\n", False, "extra line"),
        ("1\n\n2\n", "1\n2\n", False, "inner blank line counts"),
        (" 1\n", "1\n", False, "leading whitespace counts"),
        ("", "", True, "empty output expected and produced"),
        ("", "0\n", False, "nothing printed"),
    ],
)
def test_outputs_match(actual: str, expected: str, match: bool, reason: str) -> None:
    """Line comparison rules, one reason per case."""
    assert outputs_match(actual, expected) is match, reason


@pytest.mark.parametrize(
    ("response", "program", "reason"),
    [
        ("```python\nx = 1\n```", "x = 1\n", "plain fence"),
        ("```Python3 title\nx = 1\n```", "x = 1\n", "case and info string"),
        ("  ```python\n  x = 1\n  ```", "x = 1\n", "indented fence is dedented"),
        ("```python\nx = 1\n```\n```python\ny = 2\n```", "y = 2\n", "last python block"),
        ("```\nx = 1\n```\n```text\nout\n```", "x = 1\n", "bare fence when no python fence"),
        ("```python\nx = 1\n", None, "unterminated fence"),
        ("no code here", None, "no fence"),
    ],
)
def test_extract_program(response: str, program: str | None, reason: str) -> None:
    """Which block is the program, one reason per case."""
    assert extract_program(response) == program, reason


def test_batch_code_reward_keeps_order_and_runs_in_parallel() -> None:
    """Results come back in input order, and sleeping programs overlap in time."""
    slow_good = answer("import time\ntime.sleep(0.6)\n" + GOOD)
    slow_bad = answer("import time\ntime.sleep(0.6)\nprint('no')\n")
    responses = [slow_good, slow_bad, slow_good, "no code", slow_bad, slow_good]
    start = time.monotonic()
    rewards = batch_code_reward(responses, [TESTS[:1]] * len(responses), max_workers=5)
    elapsed = time.monotonic() - start
    assert rewards == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert elapsed < 2.0, f"5 sleeping programs of 0.6 s took {elapsed:.2f} s: not parallel"


def test_batch_code_reward_checks_its_inputs() -> None:
    """Mismatched lengths and bad test lists raise before anything runs."""
    with pytest.raises(ValueError):
        batch_code_reward([answer(GOOD)], [])
    with pytest.raises(ValueError):
        batch_code_reward([answer(GOOD), answer(GOOD)], [TESTS, []])
    assert batch_code_reward([], []) == []




def _fast():
    from nemotron_cascade.rewards.sandbox import SandboxLimits

    return SandboxLimits(cpu_seconds=1, wall_seconds=2.0, memory_bytes=256 << 20, max_output_bytes=1 << 16)


# Programs that print the right answer and then misbehave, or try to get the answer from the host:
# the run must be contained and the reward must be 0 wherever cheating would otherwise pay.
HOSTILE_CASES = [
    ("right output, then an infinite loop", GOOD + "while True:\n    pass\n"),
    ("right output, then sleeps past the wall clock", GOOD + "import time\ntime.sleep(60)\n"),
    ("right output, then a memory bomb", GOOD + "x = bytearray(2 << 30)\n"),
    ("right output, then an output flood", GOOD + "while True:\n    print('x' * 1000)\n"),
    ("right output, then a fork flood", GOOD + "import os\nwhile True:\n    os.fork()\n"),
    ("right output, then fills the disk",
     GOOD + "f = open('/tmp/fill', 'wb')\nwhile True:\n    f.write(b'0' * (1 << 20))\n"),
    ("right output, then kills its parent", GOOD + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                              "import time\ntime.sleep(10)\n"),
    ("answer smuggled in from the host's environment",
     "import os\nprint(os.environ.get('EXPECTED_OUTPUT', ''))\n"),
    ("answer read from a host file", "print(open('HOST_FILE').read())\n"),
]  # fmt: skip


@pytest.mark.parametrize("program", [pytest.param(p, id=reason) for reason, p in HOSTILE_CASES])
def test_hostile_programs_earn_nothing(program: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Misbehaviour after a right answer, or a peek at the host, never pays; the caller survives."""
    monkeypatch.setenv("EXPECTED_OUTPUT", "5\n6\n-1")
    host_file = tmp_path / "expected.txt"
    host_file.write_text("5\n6\n-1\n")  # the answer, readable on the host
    program = program.replace("HOST_FILE", str(host_file))
    assert code_reward(answer(program), TESTS[:1], limits=_fast()) == 0.0


def test_batch_runs_each_distinct_program_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's identical programs (common in GRPO) share one sandbox run; order is kept."""
    import nemotron_cascade.rewards.code as code

    calls = []
    real = code._run_tests

    def counting(program, tests, limits):
        calls.append(program)
        return real(program, tests, limits)

    monkeypatch.setattr(code, "_run_tests", counting)
    bad = answer(READ + "print(a)\n")
    responses = [answer(GOOD), bad, answer(GOOD), "no code", answer(GOOD)]
    assert batch_code_reward(responses, [TESTS] * 5) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert sorted(calls) == sorted([GOOD, READ + "print(a)\n"])
    # the same program on different tests is a different job
    calls.clear()
    assert batch_code_reward([answer(GOOD)] * 2, [TESTS[:1], TESTS]) == [1.0, 1.0]
    assert len(calls) == 2
