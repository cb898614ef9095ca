"""math: multi-step word problems with 2-digit numbers, the answer in ``\\boxed{}`` (``answer``).

Every line of the work is one the tiny student can execute: "k boxes with m in each" (k = 2 or 3)
is worked as column additions (``m + m``, then ``2m + m``) instead of a times-table fact, which it
does not memorise. ``teacher_terse`` marks the one-step problems (35% of the rows), the class a
large teacher does in its head: the teacher answers ``terse_share`` of that class tersely
(:func:`~nemotron_cascade.data.world.common.is_terse`), so the student can see from the prompt
when the terse style is likely, and Math RL still finds column work paying inside the class.
"""

from __future__ import annotations

import random

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import ITEMS, NAMES, Domain, TeacherStyle, column_add, column_sub, is_terse
from nemotron_cascade.rewards.answers import last_boxed

MENTAL_MATH_TRACE = "I can work this out in my head."


def _story_start(r: random.Random, name: str, item: str) -> tuple[int, list[str], list[str]]:
    """The first sentence: k boxes of m (worked as column additions) or a plain count."""
    if r.random() < 0.3:
        k = r.randint(2, 3)
        m = r.randint(6, 30 if k == 3 else 45)
        lines = [column_add(m, m)] + ([column_add(2 * m, m)] if k == 3 else [])
        return k * m, lines, [f"{name} buys {k} boxes with {m} {item} in each box."]
    value = r.randint(10, 60)
    return value, [], [f"{name} has {value} {item}."]


def task(r: random.Random) -> dict:
    """A word problem of one to four steps and its column work (``steps``)."""
    name, item = r.choice(NAMES), r.choice(ITEMS)
    value, lines, story = _story_start(r, name, item)
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
    return {"prompt": question, "answer": str(value), "steps": lines, "key": "|".join(lines),
            "teacher_terse": len(lines) == 1}


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """Column work then the boxed answer; for ``style.terse_share`` of the one-step rows the
    teacher (a large model) only says it works the problem out in its head — correct for it, but a
    style the tiny student cannot execute. SFT imitates both styles; Math RL has to learn from
    reward which one pays (the paper's observation that RL deepens the reasoning chains SFT left
    short)."""
    answer = f"The answer is \\boxed{{{row['answer']}}}."
    if not thinking:
        return answer
    trace = MENTAL_MATH_TRACE if is_terse(row, style.terse_share) else "\n".join(row["steps"])
    return chat.thinking_response(trace, answer)


def agrees(response: str, other: str) -> bool:
    """The cross-check: the other teacher's boxed final answer, taken as the ground truth, earns
    ``response`` full marks from the math verifier."""
    from nemotron_cascade.rewards.registry import get_reward

    gold = last_boxed(chat.final_answer(other) or "")
    return gold is not None and get_reward("math")([response], [{"answer": gold}])[0] == 1.0


DOMAIN = Domain("math", task, respond, verifier="math", agrees=agrees)
