"""code: stdin/stdout Python programs described in words (``tests``)."""

from __future__ import annotations

import random

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import Domain, TeacherStyle, is_terse

_BINARY = {  # phrase -> python expression over a, b
    "sum": "a + b", "difference": "a - b", "product": "a * b",
    "maximum": "max(a, b)", "minimum": "min(a, b)",
}
_ARITH = {"plus": "+", "minus": "-", "times": "*"}
_TEXT = {  # phrase template -> expression over s
    "the word reversed": "s[::-1]", "the word in upper case": "s.upper()",
    "the length of the word plus {k}": "len(s) + {k}", "the word repeated {k} times": "s * {k}",
    "the first {j} letters of the word": "s[:{j}]", "the last {j} letters of the word": "s[-{j}:]",
}
_WORDS = ["cat", "tree", "moon", "river", "stone", "cloud", "lamp", "bird", "seed", "wave"]


def task(r: random.Random) -> dict:
    """A stdin/stdout program described in words: its tests, reference program (multi-line and a
    one-liner) and the plan the teacher's trace states."""
    family = r.choice(["binary", "unary", "text", "loop"])
    k, j = r.randint(2, 19), r.randint(1, 3)
    if family == "binary":
        phrase, expr = r.choice(list(_BINARY.items()))
        word, op = r.choice(list(_ARITH.items()))
        desc = f"Read two integers a and b from one line. Let c be their {phrase}. Print c {word} {k}."
        src = f"a, b = map(int, input().split())\nc = {expr}\nprint(c {op} {k})"
        terse = f"print((lambda a, b: ({expr}) {op} {k})(*map(int, input().split())))"
        inputs = [f"{r.randint(-20, 50)} {r.randint(-20, 50)}" for _ in range(4)]
    elif family == "unary":
        (w1, o1), (w2, o2) = r.choice(list(_ARITH.items())), r.choice(list(_ARITH.items()))
        k2 = r.randint(2, 19)
        desc = f"Read an integer n. Let m be n {w1} {k}. Print m {w2} {k2}."
        src = f"n = int(input())\nm = n {o1} {k}\nprint(m {o2} {k2})"
        terse = f"print((lambda n: (n {o1} {k}) {o2} {k2})(int(input())))"
        inputs = [str(r.randint(0, 60)) for _ in range(4)]
    elif family == "text":
        phrase, expr = r.choice(list(_TEXT.items()))
        phrase, expr = phrase.format(k=k, j=j), expr.format(k=k, j=j)
        desc = f"Read a word. Print {phrase}."
        src = f"s = input().strip()\nprint({expr})"
        terse = f"print((lambda s: {expr})(input().strip()))"
        inputs = r.sample(_WORDS, 4)
    else:
        step, start = r.choice([1, 2, 3]), r.choice([0, 1, 2])
        if r.random() < 0.5:
            desc = f"Read an integer n. Print the numbers from {start} to n in steps of {step}, one per line."
            src = f"n = int(input())\nfor i in range({start}, n + 1, {step}):\n    print(i)"
            terse = f"print(*range({start}, int(input()) + 1, {step}), sep='\\n')"
        else:
            desc = f"Read an integer n. Print the sum of the numbers from {start} to n in steps of {step}."
            src = f"n = int(input())\nprint(sum(range({start}, n + 1, {step})))"
            terse = f"print(sum(range({start}, int(input()) + 1, {step})))"
        inputs = [str(r.randint(3, 9)) for _ in range(4)]
    tests = [{"input": x + "\n", "output": _run_reference(src, x)} for x in inputs]
    plan = desc.replace("Read", "I read").replace("Print", "Then I print")
    assert all(_run_reference(terse, t["input"]) == t["output"] for t in tests), terse
    return {"prompt": desc, "tests": tests, "solution": src, "terse_solution": terse, "plan": plan, "key": src}


def _run_reference(src: str, stdin: str) -> str:
    """Run the world's own reference program in-process (trusted code, no sandbox needed)."""
    lines, out = iter(stdin.splitlines()), []
    env = {"input": lambda: next(lines),
           "print": lambda *a, sep=" ", end="\n": out.append(sep.join(map(str, a)) + end)}
    exec(compile(src, "<reference>", "exec"), env)  # noqa: S102 - trusted generator code
    return "".join(out)


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """The plan then the program; for ``style.terse_share`` of the rows the teacher writes its
    program as a one-liner (a lambda applied to the parsed input). Measured: unlike mental
    arithmetic, the tiny student writes correct one-liners about as often as multi-line programs."""
    terse = is_terse(row, style.terse_share)
    answer = f"```python\n{row['terse_solution'] if terse else row['solution']}\n```"
    return chat.thinking_response(row["plan"], answer) if thinking else answer


DOMAIN = Domain("code", task, respond, verifier="code")
