"""Per-step diagnostics of an RL stage, chosen by name in its parameters (``diagnostics: [...]``).

A diagnostic reads a step's responses, rows and rewards and returns extra metrics for the stage's
curves. They watch what the reward cannot see — above all **reward hacking** in RLHF: the policy
climbing the reward model's score while the world's ground-truth quality stalls or falls, or while
answers grow longer and more repetitive.

* ``ground_truth_quality`` — the world's quality of each general answer (true, relevant, concise,
  not repetitive; :func:`world.preference_quality`), its mean, and its Pearson correlation with the
  reward across the batch (a falling correlation is the hacking signature);
* ``repetition`` — the share of sentences of the final answer that repeat an earlier one, and the
  share of repeated word 3-grams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from nemotron_cascade import chat
from nemotron_cascade.data import world

Diagnostic = Callable[[Sequence[str], Sequence[Mapping], Sequence[float]], dict]


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant or there are < 2 points."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return sxy / (sx * sy) if sx > 0 and sy > 0 else float("nan")


def ground_truth_quality(texts: Sequence[str], rows: Sequence[Mapping], rewards: Sequence[float]) -> dict:
    """Mean world quality of the general answers and its correlation with the reward (world rows
    only: a real source's row has no ground truth to judge by)."""
    from nemotron_cascade.data.world.general import is_source_row

    pairs = [(world.preference_quality(t, r["topic"]), w) for t, r, w in zip(texts, rows, rewards)
             if r.get("domain") == "general" and "topic" in r and not is_source_row(dict(r))]
    if not pairs:
        return {}
    quality = [q for q, _ in pairs]
    return {"gt_quality": sum(quality) / len(quality),
            "gt_reward_correlation": pearson(quality, [w for _, w in pairs])}


def repetition_of(text: str) -> tuple[float, float]:
    """(share of repeated sentences, share of repeated word 3-grams) of the final answer."""
    answer = chat.final_answer(text) or ""
    sentences = [s.strip().lower() for s in answer.replace("\n", " ").split(".") if s.strip()]
    words = answer.lower().split()
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    rep_s = 1 - len(set(sentences)) / len(sentences) if sentences else 0.0
    rep_g = 1 - len(set(grams)) / len(grams) if grams else 0.0
    return rep_s, rep_g


def repetition(texts: Sequence[str], rows: Sequence[Mapping], rewards: Sequence[float]) -> dict:
    """Mean repetition of the batch's final answers."""
    reps = [repetition_of(t) for t in texts]
    if not reps:
        return {}
    return {"repeated_sentences": sum(r[0] for r in reps) / len(reps),
            "repeated_trigrams": sum(r[1] for r in reps) / len(reps)}


DIAGNOSTICS: dict[str, Diagnostic] = {"ground_truth_quality": ground_truth_quality, "repetition": repetition}


def combine(names: Sequence[str] | None) -> Diagnostic | None:
    """One diagnostic running every named one (``None`` when no names)."""
    if not names:
        return None
    unknown = sorted(set(names) - set(DIAGNOSTICS))
    if unknown:
        raise KeyError(f"unknown diagnostics {unknown}; known: {sorted(DIAGNOSTICS)}")
    fns = [DIAGNOSTICS[n] for n in names]

    def run(texts, rows, rewards) -> dict:
        out = {}
        for fn in fns:
            out.update(fn(texts, rows, rewards))
        return out

    return run
