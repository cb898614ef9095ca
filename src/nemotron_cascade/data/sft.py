"""SFT samples from teacher responses, multi-turn augmentation and blends with upsampling.

A *sample* is ``{"id", "domain", "messages", "tools", "thinking"}``; ``messages`` ends with the
assistant turn that is trained on (see :mod:`nemotron_cascade.training.packing`).
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

from nemotron_cascade.data import world

Teacher = Callable[[dict, bool], str]


def to_sample(row: dict, response: str, thinking: bool) -> dict:
    """One single-turn SFT sample from a task row and its teacher response."""
    messages, tools = world.build_messages(row, thinking)
    return {"id": f"{row['id']}-{'think' if thinking else 'plain'}", "domain": row["domain"],
            "messages": messages + [{"role": "assistant", "content": response}],
            "tools": tools, "thinking": thinking}


def teacher_samples(rows: Iterable[dict], thinking_share: float, both_modes_share: float, seed: int,
                    teacher: Teacher) -> list[dict]:
    """Teacher samples: each row in thinking mode with probability ``thinking_share``.

    A ``both_modes_share`` of rows gets parallel responses in both modes (the paper generates general
    prompts with a thinking and a non-thinking teacher in parallel).
    """
    r, out = random.Random(seed), []
    for row in rows:
        if r.random() < both_modes_share:
            modes = [True, False]
        else:
            modes = [r.random() < thinking_share]
        out += [to_sample(row, teacher(row, m), m) for m in modes]
    return out


def multi_turn(samples: list[dict], share: float, seed: int) -> list[dict]:
    """Concatenate random pairs of tool-free single-turn samples into two-turn conversations.

    The first turn becomes history (its thinking stripped by the template); the second is trained.
    """
    r = random.Random(seed)
    plain = [s for s in samples if not s.get("tools")]
    out = []
    for _ in range(int(len(samples) * share)):
        a, b = r.sample(plain, 2)
        out.append({"id": f"{a['id']}+{b['id']}", "domain": b["domain"], "messages": a["messages"] + b["messages"],
                    "tools": None, "thinking": b["thinking"]})
    return out


def upsample(samples: list[dict], weight: float, seed: int) -> list[dict]:
    """Repeat samples ``weight`` times: the integer part fully, the fraction as a random subset."""
    if weight < 0:
        raise ValueError(f"upsampling weight must be >= 0, got {weight}")
    whole, frac = int(weight), weight - int(weight)
    extra = random.Random(seed).sample(samples, round(frac * len(samples)))
    return samples * whole + extra


def build_blend(sources: dict[str, list[dict]], weights: dict[str, float], seed: int) -> list[dict]:
    """The SFT blend: every named source upsampled by its weight, shuffled."""
    missing = sorted(set(weights) - set(sources))
    if missing:
        raise KeyError(f"blend weights name sources that do not exist: {missing}; have {sorted(sources)}")
    blend = []
    for name, w in sorted(weights.items()):
        blend += upsample(sources[name], float(w), seed)
    random.Random(seed).shuffle(blend)
    return blend
