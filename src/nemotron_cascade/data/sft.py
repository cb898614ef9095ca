"""SFT samples from teacher responses, multi-turn augmentation and blends with upsampling.

A *sample* is ``{"id", "domain", "messages", "tools", "thinking"}``; ``messages`` ends with the
assistant turn that is trained on (see :mod:`nemotron_cascade.training.packing`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable

from nemotron_cascade.data import teacher as teacher_data
from nemotron_cascade.data import world

log = logging.getLogger(__name__)

Teacher = Callable[[dict, bool], str]  # the single-row contract; batched teachers: generation.teachers


def to_sample(row: dict, response: str, thinking: bool, index: int | None = None) -> dict:
    """One single-turn SFT sample from a task row and its teacher response (``index``: which of
    the teacher's k responses to the request, a suffix of the id; None when k is 1)."""
    messages, tools = world.build_messages(row, thinking)
    suffix = "" if index is None else f"-{index}"
    return {"id": f"{row['id']}-{'think' if thinking else 'plain'}{suffix}", "domain": row["domain"],
            "messages": messages + [{"role": "assistant", "content": response}],
            "tools": tools, "thinking": thinking}


def teacher_requests(rows: Iterable[dict], thinking_share: float, both_modes_share: float,
                     seed: int) -> list[tuple[dict, bool]]:
    """The (row, thinking) requests for the teacher: each row in thinking mode with probability
    ``thinking_share``; a ``both_modes_share`` of rows in both modes (the paper generates general
    prompts with a thinking and a non-thinking teacher in parallel)."""
    r, out = random.Random(seed), []
    for row in rows:
        if r.random() < both_modes_share:
            modes = [True, False]
        else:
            modes = [r.random() < thinking_share]
        out += [(row, m) for m in modes]
    return out


def teacher_requests_by_domain(rows: Iterable[dict], thinking_share: dict, both_modes_share: dict,
                               seed: int) -> list[tuple[dict, bool]]:
    """:func:`teacher_requests` domain by domain (sorted), with each domain's shares (thinking
    defaults to 1.0, both modes to 0.0)."""
    by_domain: dict[str, list[dict]] = {}
    for row in rows:
        by_domain.setdefault(row["domain"], []).append(row)
    out = []
    for domain, part in sorted(by_domain.items()):
        out += teacher_requests(part, float(thinking_share.get(domain, 1.0)), float(both_modes_share.get(domain, 0.0)),
                                seed)
    return out


def samples_from_responses(requests: list[tuple[dict, bool]], responses: list[list[str]]) -> list[dict]:
    """SFT samples of the teacher's responses, request by request; with k > 1 responses per
    request the ids get the response's index (``<row>-think-0``, ``<row>-think-1``, ...)."""
    out = []
    for (row, thinking), answers in zip(requests, responses, strict=True):
        out += [to_sample(row, a, thinking, None if len(answers) == 1 else j) for j, a in enumerate(answers)]
    return out


def teacher_samples(rows: Iterable[dict], thinking_share: float, both_modes_share: float, seed: int,
                    teacher, k: int = 1, cache_path: str | None = None, batch_size: int = 64) -> list[dict]:
    """Teacher samples for ``rows`` (requests by :func:`teacher_requests`, ``k`` responses each).

    ``teacher``: a batched teacher (``respond``, see ``generation.teachers``) or a function
    ``(row, thinking) -> str``; with ``cache_path`` generation resumes (``data.teacher``).
    """
    requests = teacher_requests(rows, thinking_share, both_modes_share, seed)
    responses = teacher_data.generate_responses([r for r, _ in requests], [m for _, m in requests], teacher,
                                                k, cache_path, batch_size)
    return samples_from_responses(requests, responses)


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
    """The SFT blend: every named source upsampled by its weight, shuffled.

    A weight naming no domain at all is a typo (an error); a domain with no sample left (its teacher
    answers all filtered out, say) is warned about and blended as empty, so the stages run and the
    data card shows the gap.
    """
    from nemotron_cascade.data.world import DOMAINS

    unknown = sorted(set(weights) - set(sources) - set(DOMAINS))
    if unknown:
        raise KeyError(f"blend weights name sources that do not exist: {unknown}; have {sorted(sources)}")
    for name in sorted(set(weights) - set(sources)):
        log.warning("SFT blend: domain %r has no sample left (weight %s): blended as empty", name, weights[name])
    sources = {name: sources.get(name, []) for name in {*sources, *weights}}
    blend = []
    for name, w in sorted(weights.items()):
        blend += upsample(sources[name], float(w), seed)
    random.Random(seed).shuffle(blend)
    return blend
