"""avg@k / best@k / max@k from k samples of the tiny model, with toy rewards and judges."""

from __future__ import annotations

from statistics import mean

import pytest

from nemotron_cascade.data import world
from nemotron_cascade.evaluation.sampling import patch_judge_fn, sample_scores
from nemotron_cascade.generation.base import Completion
from nemotron_cascade.generation.hf import HFGenerator
from nemotron_cascade.rewards.swe import LexicalJudge

ROWS = world.generate_tasks("math", "bench", 3, 0)
K = 4


def digit_share(responses, rows):
    """Toy reward: the share of digits in the response (varies between samples)."""
    return [sum(ch.isdigit() for ch in r) / max(1, len(r)) for r in responses]


def negated(responses, rows):
    return [-s for s in digit_share(responses, rows)]


def _run(tokenizer, model, judge_fn=None, k=K, temperature=1.0, seed=0):
    return sample_scores(HFGenerator(model, tokenizer), ROWS, k, temperature, 12, digit_share, judge_fn, seed=seed)


@pytest.mark.parametrize("judge_fn, picks, reason", [
    (digit_share, max, "a judge that agrees with the reward picks the best sample: best@k = max@k"),
    (negated, min, "an adversarial judge picks the worst sample"),
    (None, None, "no judge: best@k not reported"),
])
def test_metrics_follow_their_definitions(tokenizer, tiny_model, judge_fn, picks, reason):
    result = _run(tokenizer, tiny_model, judge_fn)
    rewards = [rec["rewards"] for rec in result["per_row"]]
    assert result["k"] == K and result["n_rows"] == len(ROWS) and all(len(r) == K for r in rewards)
    assert result["avg@k"] == pytest.approx(mean(x for r in rewards for x in r)), reason
    assert result["max@k"] == pytest.approx(mean(max(r) for r in rewards)), reason
    assert result["avg@k"] <= result["max@k"]
    if picks is None:
        assert result["best@k"] is None, reason
    else:
        assert result["best@k"] == pytest.approx(mean(picks(r) for r in rewards)), reason
        assert result["best@k"] <= result["max@k"] + 1e-12, reason


def test_samples_differ_and_are_reproducible(tokenizer, tiny_model):
    a, b = _run(tokenizer, tiny_model, seed=3), _run(tokenizer, tiny_model, seed=3)
    assert a["per_row"] == b["per_row"]
    assert any(len(set(rec["rewards"])) > 1 for rec in a["per_row"]), "temperature 1 should vary the samples"


@pytest.mark.parametrize("k, temperature, reason", [
    (1, 1.0, "one sample: all metrics coincide"),
    (3, 0.0, "greedy: the k samples are identical"),
])
def test_degenerate_cases_collapse(tokenizer, tiny_model, k, temperature, reason):
    result = _run(tokenizer, tiny_model, digit_share, k=k, temperature=temperature)
    assert result["avg@k"] == pytest.approx(result["best@k"]) == pytest.approx(result["max@k"]), reason


class _FixedGenerator:
    """Returns given responses (n per prompt, or a wrong count to test the check)."""

    def __init__(self, texts: list[str], n: int | None = None):
        self.texts, self.n = texts, n

    def generate(self, prompts, params):
        n = params.n if self.n is None else self.n
        return [[Completion(t, [], True) for t in self.texts[:n]] for _ in prompts]


def test_patch_judge_picks_by_similarity_to_the_gold_patch():
    row = world.generate_tasks("swe", "bench", 1, 0)[0]
    gold = row["gold_patch"]
    near = gold.replace("+    return ", "+    return  0 + ", 1)
    texts = ["I cannot fix this.", f"```diff\n{near}```", f"```diff\n{gold}```"]
    judge = patch_judge_fn(LexicalJudge())
    scores = judge(texts, [row] * 3)
    assert scores[0] == -1.0 and 0.0 < scores[1] < 1.0 and scores[2] == 1.0
    result = sample_scores(_FixedGenerator(texts), [row], 3, 1.0, 8, lambda r, _: [0.0, 0.5, 1.0], judge,
                           prompt_fn=lambda r: r["prompt"])
    assert result["per_row"][0]["best_index"] == 2 and result["best@k"] == 1.0 and result["avg@k"] == 0.5


@pytest.mark.parametrize("kwargs, match, reason", [
    (dict(k=0), "k must be", "no samples"),
    (dict(rows=[]), "at least one row", "empty benchmark"),
    (dict(temperature=-1.0), "temperature", "negative temperature"),
    (dict(reward_fn=lambda r, rows: [0.0]), "reward_fn returned 1 scores for 2 samples", "reward length"),
    (dict(generator=_FixedGenerator(["a", "b"], n=1)), "row 'r0': generator returned 1 samples", "sample count"),
])
def test_bad_input_is_a_clear_error(kwargs, match, reason):
    args = dict(generator=_FixedGenerator(["a", "b"]), rows=[{"id": "r0", "prompt": "p"}], k=2, temperature=1.0,
                max_new_tokens=4, reward_fn=lambda r, rows: [0.0] * len(r), prompt_fn=lambda row: row["prompt"])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sample_scores(**args)


def test_patch_judge_needs_a_gold_patch():
    with pytest.raises(ValueError, match="'x'.*gold_patch"):
        patch_judge_fn(LexicalJudge())(["```diff\n```"], [{"id": "x"}])


def test_benchmark_evaluation_reports_avg_best_and_max_of_k_for_swe(tiny_model, tokenizer):
    from nemotron_cascade.data import world
    from nemotron_cascade.evaluation import benchmarks
    from nemotron_cascade.generation.hf import HFGenerator

    rows = world.generate_tasks("swe", "bench", 3, 0)
    cfg = benchmarks.EvalConfig(max_new_tokens=8, sampled={"swe": {"k": 2, "max_items": 2}})
    generator = HFGenerator(tiny_model, tokenizer)
    metrics = benchmarks.sampled_metrics(generator, {"swe": rows}, "swe", {"k": 2, "max_items": 2}, cfg)
    assert set(metrics) == {"swe_avg_of_2", "swe_best_of_2", "swe_max_of_2"}
    assert metrics["swe_avg_of_2"] <= metrics["swe_max_of_2"] and metrics["swe_best_of_2"] <= metrics["swe_max_of_2"]
    with pytest.raises(KeyError, match="not a verifiable benchmark column"):
        benchmarks.sampled_metrics(generator, {"general": rows}, "preference", {"k": 2}, cfg)
