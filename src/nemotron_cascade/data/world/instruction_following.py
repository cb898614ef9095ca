"""instruction_following: a note on a topic under 2–3 IFEval constraints (``instruction_id_list``)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import TOPICS, Domain, TeacherStyle, row_draw, topic_facts

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


def task(r: random.Random) -> dict:
    """A note on a topic under 2–3 compatible constraints; the split key is the constraint set, so
    the benchmark holds combinations never seen in training."""
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


def answer(row: dict, world_seed: int = 0) -> str:
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


def respond(row: dict, thinking: bool, style: TeacherStyle) -> str:
    """The note (:func:`answer`), after a trace that names the rules."""
    note = answer(row, style.world_seed)
    if not thinking:
        return note
    trace = "Rules: " + "; ".join(i.split(":")[1].replace("_", " ") for i in row["instruction_id_list"]) + "."
    return chat.thinking_response(trace, note)


def pairs(row: dict, world_seed: int = 0) -> list[dict]:
    """A compliant note against the note written for the same request with one constraint dropped,
    kept only when it really breaks that constraint (checked by the verifier); none when no
    dropped constraint does."""
    from nemotron_cascade.rewards.instruction_following import if_reward

    chosen = answer(row, world_seed)
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    start = int(row_draw(row, "pref") * len(ids))
    for k in range(len(ids)):
        drop = (start + k) % len(ids)
        reduced = {**row, "instruction_id_list": ids[:drop] + ids[drop + 1:],
                   "kwargs": kwargs[:drop] + kwargs[drop + 1:]}
        rejected = answer(reduced, world_seed)
        if rejected != chosen and not if_reward(rejected, ids, kwargs):
            return [{"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "flaw": f"ignores {ids[drop]}"}]
    return []


DOMAIN = Domain("instruction_following", task, respond, verifier="instruction_following", pairs=pairs)
