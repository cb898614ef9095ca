"""science: physics multiple choice (F = m·a, d = v·t, ...), the answer a letter (``answer``).

The options are printed letter first, as GPQA prints them ("(A) 58 N"), and the trace works the
value out, then checks the options in order until one matches, each check subtracting the option's
units digit from the worked value's in the units column of math's column subtraction:
"(A) 57 N: 8 - 7 = 1", "(B) 49 N: 8 < 9, borrow, 18 - 9 = 9", "(C) 48 N: 8 - 8 = 0, so the
answer". The options' units digits all differ, so a zero marks the right one; the line copies the
next option (positional copying, which the student does well) and reuses a subtraction table math
teaches, instead of an equality or a lookup the student has no other use for; the boxed letter is
the one on the line just written.
"""

from __future__ import annotations

import random

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import Domain, TeacherStyle, column_add, column_sub, units_sub
from nemotron_cascade.rewards.science import extract_choice

_PRODUCT_LAWS = [  # (question template, formula, unit): answer a * b with single digits
    ("A cart of mass {a} kg speeds up at {b} m/s2. What force acts on it?", "F = m * a", "N"),
    ("A bike moves at {a} m/s for {b} s. How far does it go?", "d = v * t", "m"),
    ("A lamp uses {a} V and draws {b} A. What is its power?", "P = V * I", "W"),
    ("A force of {a} N pushes a box {b} m. How much work is done?", "W = F * d", "J"),
    ("A ball of mass {a} kg moves at {b} m/s. What is its momentum?", "p = m * v", "kg m/s"),
]
_SUM_LAWS = [  # answer a + b or a - b with two-digit numbers, worked in columns
    ("Two carts of {a} kg and {b} kg are joined. What is their total mass?", "m = m1 + m2", "kg", 1),
    ("A train goes {a} km and then {b} km more. How far does it go?", "d = d1 + d2", "km", 1),
    ("A pull of {a} N to the right and {b} N to the left act on a box. What is the net force?",
     "F = F1 - F2", "N", -1),
]
LETTERS = "ABCD"


def _distinct_options(right: int, slips: list[int], r: random.Random) -> list[int]:
    """Four options in random order: ``right`` and three wrong values, no two of them with the same
    units digit, so that the units digits alone tell the options apart (what the check trace
    compares). The wrong values are the plausible slips that keep to that rule, in random order,
    topped up with values drawn near ``right``; all are at least 2. A student must still work the
    value out: no option can be told right from its own digits."""
    order, pool = list(slips), [v for v in range(max(2, right - 40), right + 41) if v != right]
    r.shuffle(order)
    r.shuffle(pool)
    options = [right]
    for v in order + pool:
        if v > 1 and all(v % 10 != o % 10 for o in options):
            options.append(v)
            if len(options) == 4:
                break
    r.shuffle(options)
    return options


def _check_line(right: int, value: int, unit: str, letter: str, last: bool) -> str:
    """One line of the check trace: the option, then its units digit subtracted from the worked
    value's, written as the units column of math's column subtraction (``units_sub``)."""
    line = f"({letter}) {value} {unit}: {units_sub(right % 10, value % 10)}"
    return line + ", so the answer" if last else line


def _problem(r: random.Random) -> tuple[int, str, str, str, int, int, int, str, list[int]]:
    """A law and its numbers: (law index, template, formula, unit, a, b, right value, the worked
    value's line, plausible slips)."""
    if r.random() < 0.5:
        law = r.randrange(len(_PRODUCT_LAWS))
        template, formula, unit = _PRODUCT_LAWS[law]
        a, b = r.randint(2, 9), r.randint(2, 9)
        right, work = a * b, f"{a} * {b} = {a * b}"
        slips = [a + b, right + a, right - b, right + 2 * a, right - 2 * b, right + 1, right - 1]
        return law, template, formula, unit, a, b, right, work, slips
    law = len(_PRODUCT_LAWS) + r.randrange(len(_SUM_LAWS))
    template, formula, unit, sign = _SUM_LAWS[law - len(_PRODUCT_LAWS)]
    if sign > 0:
        a, b = r.randint(10, 59), r.randint(10, 39)
        right, work = a + b, column_add(a, b)
    else:
        a, b = r.randint(20, 89), r.randint(10, 19)
        right, work = a - b, column_sub(a, b)
    slips = [right + 1, right - 1, right + 11, right - 11, right + 9, right - 9]  # carry slips
    return law, template, formula, unit, a, b, right, work, slips


def task(r: random.Random) -> dict:
    """A multiple-choice physics problem: the trace works the value out, then checks the options
    in order until the one that holds it (see the module docstring)."""
    law, template, formula, unit, a, b, right, work, slips = _problem(r)
    options = _distinct_options(right, slips, r)
    k = options.index(right)
    choices = "\n".join(f"({LETTERS[i]}) {v} {unit}" for i, v in enumerate(options))
    checks = [_check_line(right, v, unit, LETTERS[i], i == k) for i, v in enumerate(options[:k + 1])]
    trace = "\n".join([formula, work, *checks])
    prompt = f"{template.format(a=a, b=b)}\nOptions:\n{choices}\nAnswer with the letter."
    return {"prompt": prompt, "answer": LETTERS[k], "choices": [f"{v} {unit}" for v in options],
            "trace": trace, "key": f"{law}|{a}|{b}"}


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """The check trace, then the boxed letter."""
    answer = f"The answer is \\boxed{{{row['answer']}}}."
    return chat.thinking_response(row["trace"], answer) if thinking else answer


def agrees(response: str, other: str) -> bool:
    """The cross-check: both answers commit to the same letter."""
    mine, theirs = extract_choice(response), extract_choice(other)
    return mine is not None and mine == theirs


DOMAIN = Domain("science", task, respond, verifier="science", agrees=agrees)
