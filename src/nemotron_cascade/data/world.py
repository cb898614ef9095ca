"""The embedded world: seeded generators of small, verifiable tasks for every domain of the paper.

Every domain of Nemotron-Cascade has a miniature here that a 1–10 M parameter model can learn in
minutes on two CPU cores, and a programmatic teacher (:func:`oracle_response`) that writes a
thinking trace and a final answer the way DeepSeek-R1 / Qwen3 do for the real data:

========================  ======================================================================
domain                    task (ground truth field)
========================  ======================================================================
``math``                  multi-step word problems with 2-digit numbers, ``\\boxed{}`` (``answer``)
``code``                  stdin/stdout Python programs described in words (``tests``)
``science``               physics multiple choice: F = m·a, d = v·t, ... (``answer`` letter)
``instruction_following`` a note on a topic under 2–3 IFEval constraints (``instruction_id_list``)
``general``               "tell me about X" with a better and a worse answer (``chosen``/``rejected``)
``tool_calling``          pick one of the declared tools and fill its arguments (``expected_calls``)
``swe``                   a tiny repository, an issue, a gold unified diff, the file to localise
========================  ======================================================================

Splits (``sft``, ``rl``, ``bench``) are disjoint by construction: each task has a *key* (the
underlying problem, not its wording) and the split is a stable hash of the key, so the same problem
never lands in two splits whatever the seed. For instruction following, the key is the set of
constraints, so the benchmark holds constraint combinations never seen in training.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from nemotron_cascade import chat

DOMAINS = ("math", "code", "science", "instruction_following", "general", "tool_calling", "swe")
SPLITS = ("sft", "rl", "bench")


def split_of(domain: str, key: str, shares: tuple[float, float] = (0.70, 0.18)) -> str:
    """Stable split of a task by its key: ~70% sft, ~18% rl, ~12% bench."""
    h = int(hashlib.sha1(f"{domain}|{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "sft" if h < shares[0] else "rl" if h < shares[0] + shares[1] else "bench"


# --------------------------------------------------------------------------------------------
# Shared vocabulary of the world
NAMES = ["Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kai", "Lena",
         "Milo", "Nia", "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara"]
ITEMS = ["apples", "books", "coins", "pens", "shells", "stamps", "cards", "marbles", "eggs",
         "cups", "stones", "keys"]
TOPICS = ["otters", "glaciers", "owls", "volcanoes", "bees", "comets", "foxes", "reefs", "deserts",
          "whales", "moss", "storms", "ants", "caves", "eagles", "tides", "ferns", "geysers",
          "lynxes", "dunes", "crabs", "lichens", "herons", "canyons", "moths", "lagoons", "bats",
          "meteors", "newts", "prairies"]
PLACES = ["rivers", "mountains", "forests", "oceans", "plains", "islands", "marshes", "valleys"]
FOODS = ["fish", "seeds", "leaves", "insects", "roots", "berries", "algae", "nectar"]
COLORS = ["brown", "grey", "green", "white", "red", "blue", "gold", "black"]
TRAITS = ["quiet", "fast", "old", "rare", "bright", "strong", "small", "large"]
SEASONS = ["spring", "summer", "autumn", "winter"]


@dataclass(frozen=True)
class TopicFacts:
    """What is true of a topic in this world (the ground truth for preference quality)."""

    topic: str
    facts: tuple[str, ...]


def topic_facts(topic: str, world_seed: int = 0) -> TopicFacts:
    """Four facts per topic, fixed by the topic name and the world seed."""
    r = random.Random(f"{world_seed}:{topic}")
    t = topic.capitalize()
    facts = (
        f"{t} live near {r.choice(PLACES)}.",
        f"{t} feed on {r.choice(FOODS)}, {r.choice(FOODS)} and water.",
        f"Most {topic} are {r.choice(COLORS)} and {r.choice(TRAITS)}.",
        f"{t} are easiest to see in {r.choice(SEASONS)}.",
    )
    return TopicFacts(topic, facts)


# --------------------------------------------------------------------------------------------
# math: multi-step word problems
def _math_task(r: random.Random, executable: bool = False) -> dict:
    """A word problem of one to four steps and its column work (``steps``).

    ``executable`` (``world.math_style: executable``): every line of the work is one the tiny
    student can execute — "k boxes with m in each" (k = 2 or 3) is worked as column additions
    (``m + m``, then ``2m + m``) instead of a times-table fact, which it does not memorise (0.07–0.25
    on those problems in the plain style) — and ``teacher_terse`` marks the one-step problems (35%
    of the rows), the class a large teacher does in its head: the teacher answers ``terse_share`` of
    that class tersely (:func:`is_terse`), so the student can see from the prompt when the terse
    style is likely, and Math RL still finds column work paying inside the class."""
    name, item = r.choice(NAMES), r.choice(ITEMS)
    if r.random() < 0.3:
        if executable:
            k = r.randint(2, 3)
            m = r.randint(6, 30 if k == 3 else 45)
            lines = [column_add(m, m)] + ([column_add(2 * m, m)] if k == 3 else [])
        else:
            k, m = r.randint(2, 9), r.randint(2, 9)
            lines = [f"{k} * {m} = {k * m}"]
        value, story = k * m, [f"{name} buys {k} boxes with {m} {item} in each box."]
    else:
        value, lines = r.randint(10, 60), []
        story = [f"{name} has {value} {item}."]
    for _ in range(r.randint(1, 2)):
        if r.random() < 0.5 and value < 90:
            b = r.randint(2, min(39, 99 - value))
            story.append(r.choice([f"Then {name} finds {b} more.", f"A friend gives {name} {b} more."]))
            lines.append(column_add(value, b))
            value += b
        else:
            b = r.randint(1, max(1, value - 1))
            story.append(r.choice([f"Then {name} gives away {b}.", f"Then {name} loses {b}."]))
            lines.append(column_sub(value, b))
            value -= b
    question = " ".join(story) + f" How many {item} does {name} have now?"
    row = {"prompt": question, "answer": str(value), "steps": lines, "key": "|".join(lines)}
    if executable:
        row["teacher_terse"] = len(lines) == 1
    return row


MATH_STYLES = ("plain", "executable")


def column_add(a: int, b: int) -> str:
    """Column addition of two numbers below 100, digit by digit, as a worked trace line."""
    u = a % 10 + b % 10
    carry = u // 10
    units = f"{a % 10} + {b % 10} = {u}" + (", carry 1" if carry else "")
    tens = f"{a // 10} + {b // 10}" + (" + 1" if carry else "") + f" = {a // 10 + b // 10 + carry}"
    return f"{a} + {b}: {units}; {tens}; so {a + b}"


def units_sub(x: int, y: int) -> str:
    """The units column of a column subtraction of digit ``y`` from digit ``x``, borrowing if needed."""
    return f"{x} < {y}, borrow, {x + 10} - {y} = {x + 10 - y}" if x < y else f"{x} - {y} = {x - y}"


def column_sub(a: int, b: int) -> str:
    """Column subtraction (a >= b, both below 100) with borrowing, as a worked trace line."""
    borrow = a % 10 < b % 10
    units = units_sub(a % 10, b % 10)
    tens = f"{a // 10} - {b // 10}" + (" - 1" if borrow else "") + f" = {a // 10 - b // 10 - borrow}"
    return f"{a} - {b}: {units}; {tens}; so {a - b}"


MENTAL_MATH_TRACE = "I can work this out in my head."


def _row_draw(row: dict, salt: str) -> float:
    """A stable uniform draw in [0, 1] for a row (a hash of its id), so teacher styles are
    reproducible and independent of generation order."""
    return int(hashlib.sha1(f"{salt}|{row['id']}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def is_terse(row: dict, share: float) -> bool:
    """Whether the teacher answers this row in its terse style: ``share`` of the rows by a stable
    hash of the row id or, for rows that carry ``teacher_terse`` (``world.math_style: executable``),
    ``share`` of the rows of that class (the one-step problems, ~35% of the rows) and no other."""
    if "teacher_terse" in row and not row["teacher_terse"]:
        return False
    return share > 0 and _row_draw(row, "terse") < share


def _math_response(row: dict, thinking: bool, terse_share: float = 0.0) -> str:
    """Column work then the boxed answer; for ``terse_share`` of the rows the teacher (a large
    model) only says it works the problem out in its head — correct for it, but a style the tiny
    student cannot execute. SFT imitates both styles; Math RL has to learn from reward which one
    pays (the paper's observation that RL deepens the reasoning chains SFT left short)."""
    answer = f"The answer is \\boxed{{{row['answer']}}}."
    if not thinking:
        return answer
    trace = MENTAL_MATH_TRACE if is_terse(row, terse_share) else "\n".join(row["steps"])
    return chat.thinking_response(trace, answer)


# --------------------------------------------------------------------------------------------
# code: stdin/stdout programs described in words
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


def _code_task(r: random.Random) -> dict:
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


def _code_response(row: dict, thinking: bool, terse_share: float = 0.0) -> str:
    """The plan then the program; for ``terse_share`` of the rows the teacher writes its program as
    a one-liner (a lambda applied to the parsed input). Measured: unlike mental arithmetic, the
    tiny student writes correct one-liners about as often as multi-line programs."""
    terse = is_terse(row, terse_share)
    answer = f"```python\n{row['terse_solution'] if terse else row['solution']}\n```"
    return chat.thinking_response(row["plan"], answer) if thinking else answer


# --------------------------------------------------------------------------------------------
# science: physics multiple choice
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


SCIENCE_STYLES = ("plain", "check")


def _distinct_options(right: int, slips: list[int], r: random.Random) -> list[int]:
    """Four options in random order: ``right`` and three wrong values, no two of them with the same
    units digit, so that the units digits alone tell the options apart (what the ``check`` trace
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


def _science_check(right: int, value: int, unit: str, letter: str, last: bool) -> str:
    """One line of the ``check`` trace: the option, then its units digit subtracted from the worked
    value's, written as the units column of math's column subtraction (:func:`units_sub`)."""
    line = f"({letter}) {value} {unit}: {units_sub(right % 10, value % 10)}"
    return line + ", so the answer" if last else line


def _science_task(r: random.Random, check: bool = False) -> dict:
    """A multiple-choice physics problem. The trace works the value out, then names its option.

    ``plain``: the options list the value before the letter ("48 N (B)") and the trace ends
    "48 N (B) is the answer.": the student must find its value among the options and copy the
    letter after it. The tiny model never learns that lookup: after SFT it has the right value
    on ~70 of 100 benchmark items and the right letter on a quarter of those (README, "Science").

    ``check`` (``world.science_style: check``): the options are printed letter first, as GPQA
    prints them ("(A) 58 N"), and the trace checks them in order until one matches, each check
    subtracting the option's units digit from the worked value's in the units column of math's
    column subtraction: "(A) 57 N: 8 - 7 = 1", "(B) 49 N: 8 < 9, borrow, 18 - 9 = 9", "(C) 48 N:
    8 - 8 = 0, so the answer". The options' units digits all differ, so a zero marks the right one; the line copies
    the next option (positional copying, which the student does well) and reuses a subtraction
    table math teaches, instead of an equality or a lookup the student has no other use for; the
    boxed letter is the one on the line just written. The same tasks are drawn in both styles.
    """
    if r.random() < 0.5:
        law = r.randrange(len(_PRODUCT_LAWS))
        template, formula, unit = _PRODUCT_LAWS[law]
        a, b = r.randint(2, 9), r.randint(2, 9)
        right, work = a * b, f"{a} * {b} = {a * b}"
        slips = [a + b, right + a, right - b, right + 2 * a, right - 2 * b, right + 1, right - 1]
    else:
        law = len(_PRODUCT_LAWS) + r.randrange(len(_SUM_LAWS))
        template, formula, unit, sign = _SUM_LAWS[law - len(_PRODUCT_LAWS)]
        if sign > 0:
            a, b = r.randint(10, 59), r.randint(10, 39)
            right, work = a + b, column_add(a, b)
        else:
            a, b = r.randint(20, 89), r.randint(10, 19)
            right, work = a - b, column_sub(a, b)
        slips = [right + 1, right - 1, right + 11, right - 11, right + 9, right - 9]  # carry slips
    options = _distinct_options(right, slips, r)
    k = options.index(right)
    if check:
        choices = "\n".join(f"({LETTERS[i]}) {v} {unit}" for i, v in enumerate(options))
        checks = [_science_check(right, v, unit, LETTERS[i], i == k) for i, v in enumerate(options[:k + 1])]
        trace = "\n".join([formula, work, *checks])
    else:
        choices = "\n".join(f"{v} {unit} ({LETTERS[i]})" for i, v in enumerate(options))
        trace = f"{formula}\n{work}\n{right} {unit} ({LETTERS[k]}) is the answer."
    prompt = f"{template.format(a=a, b=b)}\nOptions:\n{choices}\nAnswer with the letter."
    return {"prompt": prompt, "answer": LETTERS[k], "choices": [f"{v} {unit}" for v in options],
            "trace": trace, "key": f"{law}|{a}|{b}"}


def _science_response(row: dict, thinking: bool) -> str:
    answer = f"The answer is \\boxed{{{row['answer']}}}."
    return chat.thinking_response(row["trace"], answer) if thinking else answer


# --------------------------------------------------------------------------------------------
# instruction following: IFEval-style constraints over a short note
END_PHRASES = ["Is there anything else I can help with?", "Let me know if you have questions."]
# id -> (phrase in the prompt, kwargs factory)
_IF_CONSTRAINTS: dict[str, tuple[Callable[[dict], str], Callable[[random.Random], dict]]] = {
    "change_case:english_lowercase": (lambda k: "Use only lowercase letters.", lambda r: {}),
    "change_case:english_capital": (lambda k: "Use only capital letters.", lambda r: {}),
    "punctuation:no_comma": (lambda k: "Do not use any commas.", lambda r: {}),
    "detectable_format:title": (lambda k: "Give it a title in double angular brackets like <<title>>.",
                                lambda r: {}),
    "startend:end_checker": (lambda k: f"End with the exact phrase: {k['end_phrase']}",
                             lambda r: {"end_phrase": r.choice(END_PHRASES)}),
    "detectable_format:number_bullet_lists": (
        lambda k: f"Use exactly {k['num_bullets']} bullet points like * this.",
        lambda r: {"num_bullets": r.randint(2, 4)}),
    "startend:quotation": (lambda k: "Wrap the whole answer in double quotes.", lambda r: {}),
    "detectable_content:postscript": (lambda k: f"Add a postscript starting with {k['postscript_marker']}",
                                      lambda r: {"postscript_marker": "P.S."}),
    "detectable_format:number_highlighted_sections": (
        lambda k: f"Highlight at least {k['num_highlights']} facts with *stars*.",
        lambda r: {"num_highlights": r.randint(1, 2)}),
    "keywords:existence": (lambda k: f"Include the words {' and '.join(k['keywords'])}.",
                           lambda r: {"keywords": sorted(r.sample(["nature", "science", "travel", "music",
                                                                    "garden", "winter"], 2))}),
}
_IF_CONFLICTS = [{"change_case:english_lowercase", "change_case:english_capital"},
                 {"detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections"},
                 {"detectable_format:number_bullet_lists", "startend:quotation"},
                 {"startend:quotation", "startend:end_checker"},
                 {"startend:quotation", "detectable_content:postscript"},
                 {"startend:end_checker", "detectable_content:postscript"},
                 {"change_case:english_capital", "detectable_content:postscript"},
                 {"change_case:english_lowercase", "detectable_content:postscript"},
                 {"change_case:english_lowercase", "startend:end_checker"},
                 {"change_case:english_capital", "startend:end_checker"},
                 {"change_case:english_lowercase", "detectable_format:title"},
                 {"change_case:english_capital", "detectable_format:title"}]


def _if_task(r: random.Random) -> dict:
    topic = r.choice(TOPICS)
    while True:
        ids = sorted(r.sample(list(_IF_CONSTRAINTS), r.randint(2, 3)))
        if not any(c <= set(ids) for c in _IF_CONFLICTS):
            break
    kwargs = [_IF_CONSTRAINTS[i][1](r) for i in ids]
    asks = " ".join(_IF_CONSTRAINTS[i][0](k) for i, k in zip(ids, kwargs))
    prompt = f"Write a short note about {topic}. {asks}"
    combo = json.dumps([ids, kwargs], sort_keys=True)
    return {"prompt": prompt, "topic": topic, "instruction_id_list": ids, "kwargs": kwargs,
            "key": f"{combo}|{topic}", "split_key": combo}


def _if_answer(row: dict, world_seed: int = 0) -> str:
    """Write a note on the topic that satisfies every constraint of the row."""
    cons = dict(zip(row["instruction_id_list"], row["kwargs"]))
    facts = list(topic_facts(row["topic"], world_seed).facts)
    if "detectable_format:number_bullet_lists" in cons:
        n = cons["detectable_format:number_bullet_lists"]["num_bullets"]
        body = "\n".join(f"* {f}" for f in facts[:n])
    else:
        body = " ".join(facts[:2])
    if "detectable_format:number_highlighted_sections" in cons:
        n = cons["detectable_format:number_highlighted_sections"]["num_highlights"]
        body = " ".join(f"*{f}*" if i < n else f for i, f in enumerate(facts[:max(2, n)]))
    if "keywords:existence" in cons:
        body += "\n" + " ".join(f"I think of {w}." for w in cons["keywords:existence"]["keywords"])
    if "punctuation:no_comma" in cons:
        body = body.replace(",", "")
    if "detectable_format:title" in cons:
        body = f"<<{row['topic'].capitalize()}>>\n{body}"
    if "detectable_content:postscript" in cons:
        body += f"\n{cons['detectable_content:postscript']['postscript_marker']} I like {row['topic']}."
    if "startend:end_checker" in cons:
        body += "\n" + cons["startend:end_checker"]["end_phrase"]
    if "change_case:english_lowercase" in cons:
        body = body.lower()
    if "change_case:english_capital" in cons:
        body = body.upper()
    if "startend:quotation" in cons:
        body = f'"{body}"'
    return body


def _if_response(row: dict, thinking: bool, world_seed: int = 0) -> str:
    answer = _if_answer(row, world_seed)
    if not thinking:
        return answer
    trace = "Rules: " + "; ".join(i.split(":")[1].replace("_", " ") for i in row["instruction_id_list"]) + "."
    return chat.thinking_response(trace, answer)


# --------------------------------------------------------------------------------------------
# general chat with preference pairs
_GENERAL_ASKS = ["Tell me about {t}.", "What do you know about {t}?", "Describe {t} briefly.",
                 "Give me some facts about {t}.", "What are {t} like?", "I want to learn about {t}."]
_FILLER = "Well, that is a very good question and I am happy to answer it."


def _general_rejections(topic: str, chosen_facts: list[str], r: random.Random, world_seed: int = 0) -> dict[str, str]:
    """Worse answers to "tell me about <topic>", one per flaw: a fact said three times; one fact
    wrong in its detail (the same kind of fact with another topic's value: a wrong season, colour,
    place or food); filler around one fact; an evasion."""
    facts = topic_facts(topic, world_seed).facts
    slot = r.randrange(len(chosen_facts))
    kind = facts.index(chosen_facts[slot])
    others = [t for t in TOPICS if t != topic]
    r.shuffle(others)
    for other in others:  # the same kind of fact, true of another topic, false of this one
        wrong = topic_facts(other, world_seed).facts[kind].replace(other.capitalize(), topic.capitalize()) \
            .replace(f" {other} ", f" {topic} ")
        if wrong not in facts:
            break
    wrong_answer = " ".join(wrong if i == slot else f for i, f in enumerate(chosen_facts))
    return {
        "repetitive": " ".join([chosen_facts[0]] * 3),
        "wrong": wrong_answer,
        "verbose": f"{_FILLER} {chosen_facts[0]} {_FILLER}",
        "evasive": "I am not sure. It is hard to say.",
    }


def _general_task(r: random.Random, world_seed: int = 0) -> dict:
    topic, ask = r.choice(TOPICS), r.randrange(len(_GENERAL_ASKS))
    facts = topic_facts(topic, world_seed).facts
    pair = sorted(r.sample(range(len(facts)), 2))
    chosen_facts = [facts[i] for i in pair]
    flaw = r.choice(["repetitive", "wrong", "verbose", "evasive"])
    rejected = _general_rejections(topic, chosen_facts, r, world_seed)[flaw]
    return {"prompt": _GENERAL_ASKS[ask].format(t=topic), "topic": topic, "chosen": " ".join(chosen_facts),
            "rejected": rejected, "flaw": flaw, "key": f"{topic}|{ask}|{pair}"}


def preference_quality(response: str, topic: str, world_seed: int = 0) -> float:
    """Ground-truth quality of a general answer in [0, 1]: true, relevant, concise, not repetitive.

    The fraction of its sentences that are true facts of the topic, times a repetition penalty,
    with a bonus for stating at least two distinct facts. Length alone earns nothing.
    """
    answer = chat.final_answer(response)
    if not answer:
        return 0.0
    sentences = [s.strip() + "." for s in answer.replace("\n", " ").split(".") if s.strip()]
    if not sentences:
        return 0.0
    truth = set(topic_facts(topic, world_seed).facts)
    true = [s for s in sentences if s in truth]
    precision = len(true) / len(sentences)
    distinct = len(set(true))
    repetition = distinct / max(1, len(true)) if true else 1.0
    coverage = min(distinct, 2) / 2
    return round(precision * repetition * (0.5 + 0.5 * coverage), 4)


def chatty_answer(row: dict) -> str:
    """The chatty teacher's answer to a general row: the two facts, padded with filler or with one
    fact said twice (a large model's verbosity and repetition, which RLHF is there to remove)."""
    facts = [s.strip() + "." for s in row["chosen"].split(".") if s.strip()]
    if _row_draw(row, "chatty-kind") < 0.7:
        return f"{_FILLER} {row['chosen']}"
    return " ".join([facts[0], *facts, facts[-1]][: len(facts) + 1])


def _general_response(row: dict, thinking: bool, chatty_share: float = 0.0) -> str:
    """Two true facts; for ``chatty_share`` of the rows the teacher pads them (see chatty_answer)."""
    answer = chatty_answer(row) if chatty_share > 0 and _row_draw(row, "chatty") < chatty_share else row["chosen"]
    trace = f"The user asks about {row['topic']}. I give two true facts, briefly."
    return chat.thinking_response(trace, answer) if thinking else answer


def preference_pairs(row: dict, world_seed: int = 0) -> list[dict]:
    """(chosen, rejected) pairs for reward-model training from a task row (none for most domains).

    General rows give one pair per flaw (the rejected answer is repetitive, wrong in one detail,
    verbose or evasive: real qualities, not length alone — verbose and repetitive ones are longer,
    evasive ones shorter, wrong ones the same length). Instruction-following rows give a compliant
    note against the note written for the same request with one constraint dropped, kept only when
    it really breaks that constraint (checked by the verifier).
    """
    if row["domain"] == "general":
        chosen_facts = [f.strip() + "." for f in row["chosen"].split(".") if f.strip()]
        r = random.Random(f"pairs|{row['id']}")
        return [{"prompt": row["prompt"], "chosen": row["chosen"], "rejected": text, "flaw": flaw}
                for flaw, text in _general_rejections(row["topic"], chosen_facts, r, world_seed).items()]
    if row["domain"] != "instruction_following":
        return []
    from nemotron_cascade.rewards.instruction_following import if_reward

    chosen = _if_answer(row, world_seed)
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    start = int(_row_draw(row, "pref") * len(ids))
    for k in range(len(ids)):
        drop = (start + k) % len(ids)
        reduced = {**row, "instruction_id_list": ids[:drop] + ids[drop + 1:], "kwargs": kwargs[:drop] + kwargs[drop + 1:]}
        rejected = _if_answer(reduced, world_seed)
        if rejected != chosen and not if_reward(rejected, ids, kwargs):
            return [{"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "flaw": f"ignores {ids[drop]}"}]
    return []


# --------------------------------------------------------------------------------------------
# tool calling
# Many cities, each seen rarely: a prior over a few names cannot fit the data, copying can.
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Rome", "Perth", "Dakar", "Hanoi",
          "Berlin", "Madrid", "Lisbon", "Dublin", "Vienna", "Prague", "Warsaw", "Athens", "Delhi", "Seoul",
          "Manila", "Jakarta", "Nairobi", "Accra", "Lagos", "Tunis", "Havana", "Bogota", "Santiago", "Denver",
          "Boston", "Austin", "Toronto", "Montreal", "Sydney", "Auckland", "Riga", "Sofia", "Zagreb", "Minsk"]
TOOLS = {
    "get_weather": {"name": "get_weather", "description": "Current weather in a city.",
                    "parameters": {"city": "string", "unit": "celsius|fahrenheit"}},
    "get_time": {"name": "get_time", "description": "Local time in a city.",
                 "parameters": {"city": "string"}},
    "convert_currency": {"name": "convert_currency", "description": "Convert money.",
                         "parameters": {"amount": "integer", "source": "string", "target": "string"}},
    "set_alarm": {"name": "set_alarm", "description": "Set an alarm.",
                  "parameters": {"hour": "integer", "minute": "integer"}},
    "book_flight": {"name": "book_flight", "description": "Book a flight.",
                    "parameters": {"origin": "string", "destination": "string"}},
}
CURRENCIES = ["EUR", "USD", "JPY", "GBP", "INR", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "MXN"]


def _tool_task(r: random.Random) -> dict:
    name = r.choice(list(TOOLS))
    city, city2 = r.sample(CITIES, 2)
    if name == "get_weather":
        unit = r.choice(["celsius", "fahrenheit"])
        ask, args = f"What is the weather in {city} in {unit}?", {"city": city, "unit": unit}
    elif name == "get_time":
        ask, args = f"What time is it in {city} now?", {"city": city}
    elif name == "convert_currency":
        amount, (src, dst) = r.randint(2, 99), r.sample(CURRENCIES, 2)
        ask, args = f"How much is {amount} {src} in {dst}?", {"amount": amount, "source": src, "target": dst}
    elif name == "set_alarm":
        hour, minute = r.randint(5, 11), r.choice([0, 15, 30, 45])
        ask, args = f"Wake me up at {hour}:{minute:02d}.", {"hour": hour, "minute": minute}
    else:
        ask, args = f"Book me a flight from {city} to {city2}.", {"origin": city, "destination": city2}
    others = r.sample([t for t in TOOLS if t != name], 1)
    tools = [TOOLS[t] for t in sorted([name, *others])]
    return {"prompt": ask, "tools": tools, "expected_calls": [{"name": name, "arguments": args}],
            "key": json.dumps([name, args], sort_keys=True)}


def _tool_response(row: dict, thinking: bool) -> str:
    call = row["expected_calls"][0]
    answer = chat.format_tool_call(call["name"], call["arguments"])
    # the trace names the tool and restates each argument next to its key, in the JSON's own
    # tokens, so the call itself is a short-range copy of the trace
    args = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in call["arguments"].items())
    trace = f'I should call "{call["name"]}" with {args}.'
    return chat.thinking_response(trace, answer) if thinking else answer


# --------------------------------------------------------------------------------------------
# SWE: a tiny repository, an issue and a gold patch
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


def _swe_task(r: random.Random) -> dict:
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


def swe_context_files(row: dict) -> list[str]:
    """The files a SWE prompt shows, best first: the localised ``context_files`` (curation's
    localisation node) or, for rows not localised, the buggy file alone (oracle localisation)."""
    return list(row.get("context_files") or [row["file"]])


# SWE prompt styles (params world.swe_style). "plain": the issue and the localised files. "numbered":
# the same with the modules named mod1..mod8. "symbol_map": numbered, and the prompt starts with a
# map of the shown files' functions.
# The tiny model copies digits from its prompt (math trains that) but not rare name tokens: in the
# plain style its next-token probability of the right file after "def add is in:\n[" was 0.123 for
# 8 modules, i.e. none (it wrote tools.py 100 times in 100), and its patches were otherwise right.
SWE_STYLES = ("plain", "numbered", "symbol_map")
_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.M)


def with_swe_style(row: dict, style: str) -> dict:
    """``row`` (a world SWE task) in prompt style ``style``: for ``numbered`` and ``symbol_map``, its
    modules renamed ``mod<k>`` (the k-th of the world's module names; the id, split and problem are unchanged); for
    ``symbol_map`` also ``symbol_map: True``, which :func:`swe_prompt` and the teacher read."""
    if style not in SWE_STYLES:
        raise ValueError(f"params world.swe_style must be one of {SWE_STYLES}, got {style!r}")
    if style == "plain":
        return row
    names = {f"{m}.py": f"mod{k + 1}.py" for k, m in enumerate(_MODULES)}
    rename = lambda p: names.get(p, p)  # noqa: E731
    patch = row["gold_patch"].replace(f"a/{row['file']}", f"a/{rename(row['file'])}") \
        .replace(f"b/{row['file']}", f"b/{rename(row['file'])}")
    renamed = {**row, "repo": {rename(p): text for p, text in row["repo"].items()}, "file": rename(row["file"]),
               "gold_patch": patch}
    return {**renamed, "symbol_map": True} if style == "symbol_map" else renamed


def swe_symbol_map(row: dict, files: list[str], max_lines: int = 200) -> str:
    """A map of the functions defined in ``files``, one line ``def <name> in [<path>]`` each, in
    file order (at most ``max_lines``): the compressed "skeleton" of the localised files that
    Agentless and Aider's repo map put before the code. "Which file defines the function the issue
    names" becomes the copy of one line instead of a search back through a file's body for the
    header above it."""
    lines = [f"def {name} in [{p}]" for p in files for name in _DEF.findall(row["repo"][p])]
    return "\n".join(lines[:max_lines])


def swe_prompt(row: dict, files: list[str] | None = None) -> str:
    """The SWE prompt: the issue, the symbol map of the localised files (rows with ``symbol_map``),
    and their content."""
    shown = files if files is not None else swe_context_files(row)
    blocks = "\n".join(f"[{p}]\n{row['repo'][p]}" for p in shown)
    symbols = f"Symbols:\n{swe_symbol_map(row, shown)}\n" if row.get("symbol_map") else ""
    return f"Issue: {row['prompt']}\n{symbols}{blocks}\nWrite a patch that fixes the issue."


def _swe_response(row: dict, thinking: bool) -> str:
    """The trace finds the function the issue names and the file it is in, then the patch. With a
    symbol map it copies the function's line of the map; otherwise it names the file shown above the
    definition in the prompt's own line form ``\n[path]`` (the same tokens, so the path can be
    copied token for token: a space before the bracket would make it another token)."""
    answer = f"```diff\n{row['gold_patch']}```"
    name = row["prompt"].split(" is wrong")[0]
    trace = f"def {name} in [{row['file']}]" if row.get("symbol_map") else f"def {name} is in:\n[{row['file']}]"
    return chat.thinking_response(trace, answer) if thinking else answer


# --------------------------------------------------------------------------------------------
# Public entry points
_GENERATORS: dict[str, Callable[[random.Random], dict]] = {
    "math": _math_task, "code": _code_task, "science": _science_task,
    "instruction_following": _if_task, "general": _general_task, "tool_calling": _tool_task,
    "swe": _swe_task,
}


def iter_tasks(domain: str, seed: int, split: str, patience: int = 5_000, math_style: str = "plain",
               science_style: str = "plain") -> Iterator[dict]:
    """Yield distinct tasks of one domain and split, deterministically from ``seed``; math tasks in
    ``math_style`` (``plain`` or ``executable``: :func:`_math_task`), science tasks in
    ``science_style`` (``plain`` or ``check``: :func:`_science_task`).

    Stops when ``patience`` draws in a row bring nothing new (the domain is exhausted).
    """
    if domain not in _GENERATORS:
        raise KeyError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
    for name, value, styles in (("math_style", math_style, MATH_STYLES),
                                ("science_style", science_style, SCIENCE_STYLES)):
        if value not in styles:
            raise ValueError(f"params world.{name} must be one of {styles}, got {value!r}")
    generate = {"math": functools.partial(_math_task, executable=math_style == "executable"),
                "science": functools.partial(_science_task, check=science_style == "check")}.get(
        domain, _GENERATORS[domain])
    r, seen, misses = random.Random(f"{seed}:{domain}:{split}"), set(), 0
    while misses < patience:
        task = generate(r)
        key, split_key = task.pop("key"), task.pop("split_key", None)
        if key in seen or split_of(domain, split_key or key) != split:
            misses += 1
            continue
        seen.add(key)
        misses = 0
        yield {"id": f"{domain}-{split}-{hashlib.sha1(key.encode()).hexdigest()[:10]}",
               "domain": domain, "split": split, **task}


def generate_tasks(domain: str, split: str, n: int, seed: int, swe_style: str = "plain",
                   math_style: str = "plain", science_style: str = "plain") -> list[dict]:
    """``n`` distinct tasks (fewer when the domain has fewer distinct problems in that split); SWE
    tasks in prompt style ``swe_style`` (:func:`with_swe_style`), math tasks in ``math_style``,
    science tasks in ``science_style``."""
    if n <= 0:
        return []
    out = []
    for task in iter_tasks(domain, seed, split, math_style=math_style, science_style=science_style):
        out.append(with_swe_style(task, swe_style) if domain == "swe" else task)
        if len(out) == n:
            break
    return out


def build_messages(row: dict, thinking: bool) -> tuple[list[dict], list[dict] | None]:
    """The conversation (without the answer) and the declared tools for a task row."""
    content = swe_prompt(row) if row["domain"] == "swe" else row["prompt"]
    return [{"role": "user", "content": content, "thinking": thinking}], row.get("tools")


def render_prompt(row: dict, thinking: bool, max_prompt_tokens: int | None = None,
                  count_tokens: Callable[[str], int] | None = None) -> str:
    """The generation prompt of a task row (chat template, generation prompt appended).

    With ``max_prompt_tokens`` (and ``count_tokens``, the policy tokenizer's count), a SWE prompt
    keeps as many of its localised files, best first, as fit in the budget — at least one: the
    input-context curriculum of SWE RL. Other rows ignore the budget.
    """
    if max_prompt_tokens is not None and row["domain"] == "swe":
        if count_tokens is None:
            raise ValueError("render_prompt: a max_prompt_tokens budget needs count_tokens")
        files = swe_context_files(row)
        for n in range(len(files), 0, -1):
            text = render_prompt({**row, "context_files": files[:n]}, thinking)
            if n == 1 or count_tokens(text) <= max_prompt_tokens:
                return text
    messages, tools = build_messages(row, thinking)
    return chat.render(messages, tools, add_generation_prompt=True, enable_thinking=thinking)


def oracle_response(row: dict, thinking: bool, world_seed: int = 0, terse_share: dict | None = None,
                    chatty_share: dict | None = None) -> str:
    """The programmatic teacher: a correct thinking trace (optional) and final answer.

    ``terse_share`` maps a domain to the share of its rows the teacher answers in a terse style
    (math: "in my head" instead of the column work; code: one-liner programs). A large teacher
    writes like that and is right; the tiny student imitates the style and, for math, fails with
    it (for code the one-liners turned out harmless). SFT teaches both styles; the RL stages must
    learn from reward which one pays — the paper's observation that RL deepens the reasoning SFT
    left short. ``chatty_share`` does the same for general chat: the share of answers the teacher
    pads with filler or repetition (:func:`chatty_answer`), the verbosity RLHF removes.
    Default: neither.
    """
    domain = row["domain"]
    share = float((terse_share or {}).get(domain, 0.0))
    if domain == "general":
        return _general_response(row, thinking, float((chatty_share or {}).get(domain, 0.0)))
    if domain == "instruction_following":
        return _if_response(row, thinking, world_seed)
    if domain in ("math", "code"):
        return {"math": _math_response, "code": _code_response}[domain](row, thinking, share)
    return {"science": _science_response, "tool_calling": _tool_response,
            "swe": _swe_response}[domain](row, thinking)
