"""Filters of teacher responses before they enter an SFT blend. Each sample either passes or is
removed with the name of the first filter it fails and why, in this order:

1. ``format``: an empty response, a think block that never closes, an empty final answer.
2. ``repetition``: some ``repeat_ngram``-word sequence occurs more than ``max_ngram_repeats`` times
   (a looping answer).
3. ``length``: more than ``max_chars`` characters.
4. ``correctness``: the domain's verifier against the task's ground truth scores below
   ``correctness[domain]`` (math, code in the sandbox, science, instruction following, tool calls;
   SWE: the patch's similarity to the gold patch, paper: ≥ 0.5). ``correctness_sample[domain]``
   checks a seeded sample of that domain only (the embedded default checks 60 code programs, not
   every one: a sandbox run per test costs ~0.1 s); the card reports how many were checked.
5. ``<domain>``: the domain's own check of its samples (``sample_check`` of its entry in the world's
   registry; SWE: localisation recall 1.0, i.e. every file of the gold patch is in the prompt's
   context, and every ``python`` block of the response, e.g. generated tests, parses).
6. ``cross_check``: a second teacher (``cross_check.backend``; ``none`` only by explicit choice)
   answers the same prompt; for the domains whose registry entry says how answers agree (math and
   science) its final answer must agree with the sample's.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field

from nemotron_cascade import chat
from nemotron_cascade.data.world import REGISTRY
from nemotron_cascade.rewards.registry import get_reward, reward_names

log = logging.getLogger(__name__)

# the domains with a check of their own samples, and those a second teacher's answer can agree with
SAMPLE_CHECKED = tuple(name for name, d in REGISTRY.items() if d.sample_check is not None)
CROSS_CHECKED = tuple(name for name, d in REGISTRY.items() if d.agrees is not None)
FILTERS = ("format", "repetition", "length", "correctness", *SAMPLE_CHECKED, "cross_check")


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the filters (see the module docstring)."""

    max_chars: int | None = None
    repeat_ngram: int = 6
    max_ngram_repeats: int = 3
    correctness: dict = field(default_factory=dict)
    correctness_sample: dict = field(default_factory=dict)
    cross_check: dict = field(default_factory=lambda: {"backend": "none"})
    seed: int = 0

    def __post_init__(self):
        unknown = sorted(set(self.correctness) - set(reward_names()))
        if unknown:
            raise KeyError(f"filters.correctness names domains without a verifier: {unknown}; have {reward_names()}")
        if "backend" not in self.cross_check:
            raise KeyError("filters.cross_check needs a backend ('none' to switch the cross-check off explicitly)")


def max_ngram_count(text: str, n: int) -> int:
    """How often the most frequent ``n``-word sequence of ``text`` occurs."""
    w = text.split()
    counts = Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return max(counts.values(), default=0)


def format_problem(response: str) -> str | None:
    """Why a response is malformed (``None`` when it is not)."""
    if not response.strip():
        return "empty response"
    parsed = chat.split_response(response)
    if parsed.status == "unclosed":
        return "think block never closed"
    if not parsed.answer:
        return "empty final answer"
    return None


def _agrees(domain: str, response: str, other: str) -> bool:
    """Whether the second teacher's answer ``other`` agrees with ``response`` (its domain's rule)."""
    return REGISTRY[domain].agrees(response, other)


def filter_samples(samples: list[dict], tasks: dict[str, dict], config: FilterConfig,
                   second_teacher=None) -> tuple[list[dict], list[dict], dict]:
    """Samples that pass every filter, removal records, and per-domain counts of what was checked.

    ``tasks`` maps a task id to its row; a sample's task id is its ``task_id`` field (or its id up to
    the mode suffix). ``second_teacher(rows, modes) -> [response]`` serves the cross-check.
    """
    failed: dict[int, tuple[str, str]] = {}
    checked: Counter = Counter()

    def fail(i: int, name: str, why: str) -> None:
        failed.setdefault(i, (name, why))

    task_of = [tasks[task_id(s)] for s in samples]
    for i, s in enumerate(samples):
        response = s["messages"][-1]["content"]
        if (why := format_problem(response)) is not None:
            fail(i, "format", why)
        elif (c := max_ngram_count(response, config.repeat_ngram)) > config.max_ngram_repeats:
            fail(i, "repetition", f"a {config.repeat_ngram}-word sequence occurs {c} times")
        elif config.max_chars is not None and len(response) > config.max_chars:
            fail(i, "length", f"{len(response)} characters > {config.max_chars}")
    rng = random.Random(config.seed)
    for domain, threshold in sorted(config.correctness.items()):
        idx = [i for i, s in enumerate(samples) if s["domain"] == domain and i not in failed
               and task_of[i].get("verifiable") is not False]  # no tests / free-form: nothing to check by
        cap = config.correctness_sample.get(domain)
        if cap is not None and len(idx) > int(cap):
            idx = sorted(rng.sample(idx, int(cap)))
        checked[domain] += len(idx)
        scores = get_reward(domain)([samples[i]["messages"][-1]["content"] for i in idx], [task_of[i] for i in idx])
        for i, score in zip(idx, scores):
            if score < float(threshold):
                fail(i, "correctness", f"{domain} verifier scored {score:.2f} < {threshold}")
    for i, s in enumerate(samples):
        if s["domain"] in SAMPLE_CHECKED and i not in failed:
            if (why := REGISTRY[s["domain"]].sample_check(s, task_of[i])) is not None:
                fail(i, s["domain"], why)
    alive = [i for i in range(len(samples)) if i not in failed]
    for i in _disagreements(samples, task_of, alive, config, second_teacher):
        fail(i, "cross_check", "the second teacher's final answer disagrees")
    kept = [s for i, s in enumerate(samples) if i not in failed]
    removed = [{"id": s["id"], "domain": s["domain"], "step": "filter", "filter": failed[i][0],
                "reason": failed[i][1], "planted": s.get("planted")}
               for i, s in enumerate(samples) if i in failed]
    return kept, removed, dict(checked)


def _disagreements(samples, task_of, candidates: list[int], config, second_teacher) -> list[int]:
    """Which of the ``candidates`` (samples of the cross-checked domains) the second teacher answers
    otherwise."""
    domains = [d for d in config.cross_check.get("domains", list(CROSS_CHECKED)) if d in CROSS_CHECKED]
    if config.cross_check["backend"] == "none" or not domains:
        return []
    if second_teacher is None:
        raise ValueError(f"filters.cross_check.backend is {config.cross_check['backend']!r} "
                         "but no second teacher was given")
    idx = [i for i in candidates if samples[i]["domain"] in domains]
    others = second_teacher([task_of[i] for i in idx], [bool(samples[i]["thinking"]) for i in idx])
    return [i for i, other in zip(idx, others)
            if not _agrees(samples[i]["domain"], samples[i]["messages"][-1]["content"], other)]


def task_id(sample: dict) -> str:
    """The id of the task a sample answers."""
    return sample.get("task_id") or sample["id"].rsplit("-", 1)[0]


# -- planted flaws (the embedded world's test of the filters) ---------------------------------------

def plant_flaws(samples: list[dict], per_kind: int, seed: int, max_chars: int | None) -> list[dict]:
    """``samples`` plus ``per_kind`` broken copies of each kind, marked ``planted``: a wrong math
    answer, a think block left open, an empty answer, a looping answer, an over-long answer, and a
    SWE patch to the wrong file (similarity < 0.5)."""
    if per_kind <= 0:
        return samples
    rng = random.Random(seed)
    out = list(samples)

    def add(kind: str, pool: list[dict], edit) -> None:
        for k, s in enumerate(rng.sample(pool, min(per_kind, len(pool)))):
            content = edit(s["messages"][-1]["content"])
            copy = {**s, "id": f"{s['id']}-flaw{k}", "task_id": task_id(s), "planted": kind,
                    "messages": s["messages"][:-1] + [{"role": "assistant", "content": content}]}
            out.insert(rng.randint(0, len(out)), copy)

    by = lambda d, thinking=None: [s for s in samples if s["domain"] == d and  # noqa: E731
                                   (thinking is None or s["thinking"] == thinking) and "planted" not in s]
    add("wrong_answer", by("math"), lambda c: re.sub(r"\\boxed\{([^}]*)\}", r"\\boxed{\g<1>1}", c))
    add("unclosed_think", by("math", True) or by("code", True), lambda c: c.replace(chat.THINK_CLOSE, ""))
    add("empty_answer", by("science", True), lambda c: c.split(chat.THINK_CLOSE)[0] + chat.THINK_CLOSE + "\n")
    add("repetition", by("general"), lambda c: c + " And so it goes on and on." * 6)
    pad = " ".join(f"note {i}." for i in range((max_chars or 4000) // 6))
    add("too_long", by("instruction_following"), lambda c: c + "\n" + pad)
    add("wrong_patch", by("swe"), _wrong_file_patch)
    return out


def _wrong_file_patch(content: str) -> str:
    return re.sub(r"^(---|\+\+\+) ([ab])/(\S+)", lambda m: f"{m.group(1)} {m.group(2)}/elsewhere_{m.group(3)}",
                  content, flags=re.MULTILINE)
