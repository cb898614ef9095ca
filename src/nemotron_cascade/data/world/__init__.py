"""The embedded world: seeded generators of small, verifiable tasks for every domain of the paper.

Every domain of Nemotron-Cascade has a miniature here that a 1–10 M parameter model can learn in
minutes on two CPU cores, and a programmatic teacher (:func:`oracle_response`) that writes a
thinking trace and a final answer the way DeepSeek-R1 / Qwen3 do for the real data. Each domain is
a module of this package registered by name (:mod:`.registry`: its task generator, teacher, prompt
and verifier name, see :class:`~.common.Domain`):

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

import hashlib
import random
from collections.abc import Callable, Iterator

from nemotron_cascade import chat
from nemotron_cascade.data.world.common import (
    COLORS,
    FOODS,
    ITEMS,
    NAMES,
    PLACES,
    SEASONS,
    SPLITS,
    TOPICS,
    TRAITS,
    Domain,
    TeacherStyle,
    TopicFacts,
    column_add,
    column_sub,
    is_terse,
    split_of,
    topic_facts,
    units_sub,
)
from nemotron_cascade.data.world.general import chatty_answer, preference_quality
from nemotron_cascade.data.world.instruction_following import END_PHRASES
from nemotron_cascade.data.world.math import MENTAL_MATH_TRACE
from nemotron_cascade.data.world.registry import DOMAINS, REGISTRY, get_domain
from nemotron_cascade.data.world.science import LETTERS
from nemotron_cascade.data.world.swe import make_patch, swe_context_files, swe_prompt
from nemotron_cascade.data.world.tool_calling import CITIES, CURRENCIES, TOOLS

__all__ = [
    "CITIES", "COLORS", "CURRENCIES", "DOMAINS", "Domain", "END_PHRASES", "FOODS", "ITEMS", "LETTERS",
    "MENTAL_MATH_TRACE", "NAMES", "PLACES", "REGISTRY", "SEASONS", "SPLITS", "TOOLS", "TOPICS", "TRAITS",
    "TeacherStyle", "TopicFacts", "build_messages", "chatty_answer", "column_add", "column_sub", "generate_tasks",
    "get_domain", "is_terse", "iter_tasks", "make_patch", "oracle_response", "preference_pairs",
    "preference_quality", "render_prompt", "split_of", "swe_context_files", "swe_prompt", "topic_facts",
    "units_sub",
]


def iter_tasks(domain: str, seed: int, split: str, patience: int = 5_000,
               generate: Callable[[random.Random], dict] | None = None) -> Iterator[dict]:
    """Yield distinct tasks of one domain and split, deterministically from ``seed``, drawn by the
    domain's generator (or by ``generate``, a generator of the same contract).

    Stops when ``patience`` draws in a row bring nothing new (the domain is exhausted).
    """
    draw = generate or get_domain(domain).generate
    r, seen, misses = random.Random(f"{seed}:{domain}:{split}"), set(), 0
    while misses < patience:
        task = draw(r)
        key, split_key = task.pop("key"), task.pop("split_key", None)
        if key in seen or split_of(domain, split_key or key) != split:
            misses += 1
            continue
        seen.add(key)
        misses = 0
        yield {"id": f"{domain}-{split}-{hashlib.sha1(key.encode()).hexdigest()[:10]}",
               "domain": domain, "split": split, **task}


def generate_tasks(domain: str, split: str, n: int, seed: int) -> list[dict]:
    """``n`` distinct tasks (fewer when the domain has fewer distinct problems in that split)."""
    if n <= 0:
        return []
    out = []
    for task in iter_tasks(domain, seed, split):
        out.append(task)
        if len(out) == n:
            break
    return out


def build_messages(row: dict, thinking: bool) -> tuple[list[dict], list[dict] | None]:
    """The conversation (without the answer) and the declared tools for a task row (a row of a
    domain the world does not know shows its ``prompt``)."""
    domain = REGISTRY.get(row["domain"])
    content = domain.prompt(row) if domain is not None else row["prompt"]
    return [{"role": "user", "content": content, "thinking": thinking}], row.get("tools")


def render_prompt(row: dict, thinking: bool, max_prompt_tokens: int | None = None,
                  count_tokens: Callable[[str], int] | None = None) -> str:
    """The generation prompt of a task row (chat template, generation prompt appended).

    With ``max_prompt_tokens`` (and ``count_tokens``, the policy tokenizer's count), a prompt of a
    localised domain (SWE) keeps as many of its localised files, best first, as fit in the budget —
    at least one: the input-context curriculum of SWE RL. Other rows ignore the budget.
    """
    domain = REGISTRY.get(row["domain"])
    if max_prompt_tokens is not None and domain is not None and domain.localised:
        if count_tokens is None:
            raise ValueError("render_prompt: a max_prompt_tokens budget needs count_tokens")
        files = domain.context_files(row)
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
    name = row["domain"]
    style = TeacherStyle(world_seed, float((terse_share or {}).get(name, 0.0)),
                         float((chatty_share or {}).get(name, 0.0)))
    return get_domain(name).respond(row, thinking, style)


def preference_pairs(row: dict, world_seed: int = 0) -> list[dict]:
    """(chosen, rejected) pairs for reward-model training from a task row: its domain's pairs
    (general chat: one per flaw; instruction following: a note that ignores one constraint), none
    for the other domains."""
    domain = REGISTRY.get(row["domain"])
    return domain.pairs(row, world_seed) if domain is not None and domain.pairs is not None else []
