"""The benchmark evaluation's graded columns: the mean reward and the share solved outright."""

from __future__ import annotations

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.evaluation import benchmarks
from nemotron_cascade.generation.base import Completion


class ScriptedGenerator:
    """Answers each benchmark prompt with a fixed response (the scoring under test is real)."""

    tokenizer = None

    def __init__(self, answers: dict[str, str], sampled: dict[str, str] | None = None):
        self.answers, self.sampled = answers, sampled

    def generate(self, prompts, params):
        """Greedy calls get ``answers``; sampled calls (temperature > 0) get ``sampled`` when given."""
        answers = self.sampled if params.temperature > 0 and self.sampled is not None else self.answers
        return [[Completion(text=answers.get(p, "no idea"), token_ids=[0, 1], finished=True)] * params.n
                for p in prompts]


def _swe_answer(row, patch):
    return f"<think>\ndef x is in:\n[{row['file']}]\n</think>\n\n```diff\n{patch}```"


def _near_miss(patch: str) -> str:
    """The gold patch with its added line changed: a wrong fix in the right place."""
    lines = patch.splitlines(keepends=True)
    plus = max(i for i, line in enumerate(lines) if line.startswith("+") and not line.startswith("+++"))
    lines[plus] = lines[plus].rstrip("\n") + " + 1\n"
    return "".join(lines)


@pytest.mark.parametrize("kind, score, solved, why", [
    ("gold", 1.0, 1.0, "the gold patch: reward 1, solved"),
    ("near", None, 0.0, "a wrong fix in the right line: partial credit from the judge, not solved"),
    ("prose", -1.0, 0.0, "prose is no patch: reward -1, not solved"),
])
def test_swe_reports_the_share_solved_beside_the_mean_reward(kind, score, solved, why):
    (row,) = world.generate_tasks("swe", "bench", 1, 0)
    response = {"gold": _swe_answer(row, row["gold_patch"]), "near": _swe_answer(row, _near_miss(row["gold_patch"])),
                "prose": "<think>\nhmm\n</think>\n\nI would change the function."}[kind]
    prompt = world.render_prompt(row, True)
    cfg = benchmarks.EvalConfig(max_new_tokens=8)
    metrics, records = benchmarks.evaluate(ScriptedGenerator({prompt: response}), [row], cfg)
    assert metrics["swe_resolved"] == solved, why
    if score is not None:
        assert metrics["swe"] == score, why
    else:
        assert 0.0 < metrics["swe"] < 1.0, why
    assert [round(r["score"], 4) for r in records if r["metric"] == "swe"] == [metrics["swe"]]


def test_solved_share_over_a_mixed_benchmark():
    rows = world.generate_tasks("swe", "bench", 4, 0)
    answers = {world.render_prompt(r, True):
               _swe_answer(r, r["gold_patch"] if i % 2 == 0 else _near_miss(r["gold_patch"]))
               for i, r in enumerate(rows)}
    metrics, _ = benchmarks.evaluate(ScriptedGenerator(answers), rows, benchmarks.EvalConfig(max_new_tokens=8))
    assert metrics["swe_resolved"] == 0.5  # two gold, two near misses
    assert 0.5 < metrics["swe"] < 1.0      # the near misses still earn partial credit
    assert "math_resolved" not in metrics   # binary columns need no second number


@pytest.mark.parametrize("headline, why", [
    (True, "headline: the column is avg@k and the greedy score moves to swe_greedy"),
    (False, "no headline: the column stays greedy, avg@k beside it"),
])
def test_sampled_headline_swaps_the_column_for_avg_at_k(headline, why):
    rows = world.generate_tasks("swe", "bench", 2, 0)
    prompts = [world.render_prompt(r, True) for r in rows]
    greedy = {p: _swe_answer(r, r["gold_patch"]) for p, r in zip(prompts, rows)}     # greedy: both gold
    sampled = {prompts[0]: _swe_answer(rows[0], rows[0]["gold_patch"]),
               prompts[1]: "<think>\nhmm\n</think>\n\nno patch"}                     # samples: 1 and -1
    cfg = benchmarks.EvalConfig(max_new_tokens=8, sampled={"swe": {"k": 2, "headline": headline}})
    metrics, _ = benchmarks.evaluate(ScriptedGenerator(greedy, sampled), rows, cfg)
    assert metrics["swe_avg_of_2"] == 0.0 and metrics["swe_resolved"] == 1.0, why
    if headline:
        assert (metrics["swe"], metrics["swe_greedy"]) == (0.0, 1.0), why
    else:
        assert metrics["swe"] == 1.0 and "swe_greedy" not in metrics, why
