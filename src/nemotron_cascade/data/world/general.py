"""general: "tell me about X" with a better and a worse answer (``chosen``/``rejected``), and the
ground-truth quality of an answer (:func:`preference_quality`: true, relevant, concise, not
repetitive)."""

from __future__ import annotations

import random

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import TOPICS, Domain, TeacherStyle, row_draw, topic_facts

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


def task(r: random.Random, world_seed: int = 0) -> dict:
    """"Tell me about <topic>" with a better answer (two true facts) and a worse one (one flaw)."""
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
    if row_draw(row, "chatty-kind") < 0.7:
        return f"{_FILLER} {row['chosen']}"
    return " ".join([facts[0], *facts, facts[-1]][: len(facts) + 1])


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """Two true facts; for ``style.chatty_share`` of the rows the teacher pads them (see
    :func:`chatty_answer`)."""
    chatty_share = style.chatty_share
    answer = chatty_answer(row) if chatty_share > 0 and row_draw(row, "chatty") < chatty_share else row["chosen"]
    trace = f"The user asks about {row['topic']}. I give two true facts, briefly."
    return chat.thinking_response(trace, answer) if thinking else answer


def is_source_row(row: dict) -> bool:
    """Whether ``row`` came from a registered data source (an HF dataset: its ``source`` names it)
    rather than from this world (world rows carry no ``source``)."""
    from nemotron_cascade.data.sources.registry import BENCHMARKS, SOURCES

    source = row.get("source")
    return isinstance(source, str) and (source in SOURCES or source in BENCHMARKS)


def source_pairs(row: dict) -> list[dict]:
    """A source row's own pair: its (``chosen``, ``rejected``) when both are non-empty (a human
    preference, e.g. HelpSteer3), none otherwise (an SFT-only row has nothing to prefer to)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not (isinstance(chosen, str) and chosen.strip() and isinstance(rejected, str) and rejected.strip()):
        return []
    strength = row.get("preference_strength")
    flaw = f"human preference of {row['source']}" + (f" (strength {strength} of 3)" if strength else "")
    return [{"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "flaw": flaw}]


def pairs(row: dict, world_seed: int = 0) -> list[dict]:
    """One pair per flaw: the rejected answer is repetitive, wrong in one detail, verbose or
    evasive (real qualities, not length alone — verbose and repetitive ones are longer, evasive
    ones shorter, wrong ones the same length). A row of a data source gives its own pair instead
    (:func:`source_pairs`)."""
    if is_source_row(row):
        return source_pairs(row)
    chosen_facts = [f.strip() + "." for f in row["chosen"].split(".") if f.strip()]
    r = random.Random(f"pairs|{row['id']}")
    return [{"prompt": row["prompt"], "chosen": row["chosen"], "rejected": text, "flaw": flaw}
            for flaw, text in _general_rejections(row["topic"], chosen_facts, r, world_seed).items()]


DOMAIN = Domain("general", task, respond, verifier=None, pairs=pairs)
