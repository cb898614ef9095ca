"""Test-time scaling metrics from k samples per prompt: avg@k, best@k and max@k.

For each row, ``k`` responses are sampled at ``temperature`` and scored by ``reward_fn`` (the
registry's ``(responses, rows) -> [float]`` contract):

* ``avg@k``: mean reward over all ``len(rows) * k`` samples — the expected single-sample reward;
* ``best@k``: mean over rows of the reward of the sample the *judge* ranks highest (first on ties) —
  the paper's test-time scaling, "the best of k samples by the judge";
* ``max@k``: mean over rows of the highest reward among the k samples (pass@k-style oracle; for a
  0/1 reward it is pass@k). ``best@k <= max@k`` always.

``judge_fn`` has the reward's contract and returns a ranking score per sample (higher is better).
For SWE, following the paper and issue 6, the judge scores each predicted patch *against the gold
patch* (:func:`patch_judge_fn`, e.g. with the LLM judge): selection then sees the reference, so
best@k measures how well the judge picks, bounded above by max@k — it is not a reference-free
deployment setting. Without a judge, ``best@k`` is ``None``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from statistics import mean
from typing import Any

from nemotron_cascade.generation.base import Generator, SamplingParams

logger = logging.getLogger(__name__)

ScoreFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], list[float]]


def _scores(name: str, fn: ScoreFn, responses: list[str], rows: list[Mapping], k: int) -> list[list[float]]:
    """``fn`` over the flattened samples, checked and regrouped as ``k`` scores per row."""
    scores = list(fn(responses, rows))
    if len(scores) != len(responses):
        raise ValueError(f"{name} returned {len(scores)} scores for {len(responses)} samples")
    return [scores[i:i + k] for i in range(0, len(scores), k)]


def sample_scores(generator: Generator, rows: Sequence[Mapping[str, Any]], k: int, temperature: float,
                  max_new_tokens: int, reward_fn: ScoreFn, judge_fn: ScoreFn | None = None, *,
                  thinking: bool = True, prompt_fn: Callable[[Mapping], str] | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Sample ``k`` responses per row and report ``avg@k``, ``best@k`` (``None`` without a judge),
    ``max@k`` and per-row records (``rewards``, ``judge``, ``best_index``).

    ``prompt_fn`` renders a row (default: the world's chat prompt in ``thinking`` mode).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not rows:
        raise ValueError("sample_scores needs at least one row")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 and k > 1:
        logger.warning("greedy decoding with k=%d: every sample is the same, so avg@k = best@k = max@k", k)
    if prompt_fn is None:
        from nemotron_cascade.data import world

        prompt_fn = lambda row: world.render_prompt(row, thinking)  # noqa: E731
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, n=k, seed=seed)
    outputs = generator.generate([prompt_fn(row) for row in rows], params)
    if len(outputs) != len(rows):
        raise ValueError(f"generator returned {len(outputs)} prompts' samples for {len(rows)} rows")
    for i, completions in enumerate(outputs):
        if len(completions) != k:
            raise ValueError(f"row {rows[i].get('id', i)!r}: generator returned {len(completions)} samples, "
                             f"expected {k}")
    responses = [c.text for completions in outputs for c in completions]
    flat_rows = [row for row in rows for _ in range(k)]
    rewards = _scores("reward_fn", reward_fn, responses, flat_rows, k)
    judged = _scores("judge_fn", judge_fn, responses, flat_rows, k) if judge_fn else None
    records = []
    for i, row in enumerate(rows):
        best = max(range(k), key=lambda j: (judged[i][j], -j)) if judged else None
        records.append({"id": row.get("id", i), "rewards": rewards[i],
                        "judge": judged[i] if judged else None, "best_index": best})
    result = {
        "k": k,
        "n_rows": len(rows),
        "avg@k": mean(r for rec in records for r in rec["rewards"]),
        "best@k": mean(rec["rewards"][rec["best_index"]] for rec in records) if judged else None,
        "max@k": mean(max(rec["rewards"]) for rec in records),
        "per_row": records,
    }
    logger.info("k=%d over %d rows: avg@k %.4f, best@k %s, max@k %.4f", k, len(rows), result["avg@k"],
                "n/a" if result["best@k"] is None else f"{result['best@k']:.4f}", result["max@k"])
    return result


def patch_judge_fn(judge) -> ScoreFn:
    """A ``judge_fn`` for SWE rows: the judge's score of each response's patch against
    ``row["gold_patch"]``; -1 when the response has no parsable patch. Uses ``judge.batch`` (one
    generate call for the LLM judge) when the judge has one."""
    from nemotron_cascade.rewards.swe import extract_patch, parse_patch

    def score(responses: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[float]:
        out: list[float] = [-1.0] * len(responses)
        todo = []
        for i, (response, row) in enumerate(zip(responses, rows)):
            if not isinstance(row.get("gold_patch"), str):
                raise ValueError(f"row {row.get('id', i)!r}: field 'gold_patch' must be a string")
            patch = extract_patch(response)
            if patch is not None and parse_patch(patch) is not None:
                todo.append((i, patch, row["gold_patch"]))
        pairs = [(patch, gold) for _, patch, gold in todo]
        values = judge.batch(pairs) if hasattr(judge, "batch") else [judge(p, g) for p, g in pairs]
        for (i, _, _), value in zip(todo, values):
            out[i] = float(value)
        return out

    return score
