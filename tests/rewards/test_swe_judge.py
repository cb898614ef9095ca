"""LLM judge: P(yes) from the tiny local model's log-probs through the real HF backend."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from nemotron_cascade import models
from nemotron_cascade.data import world
from nemotron_cascade.generation.hf import HFGenerator
from nemotron_cascade.rewards.swe import swe_reward
from nemotron_cascade.rewards.swe_judge import LLMJudge, answer_tokens, judge_prompt, p_yes

ROW = world.generate_tasks("swe", "sft", 1, 0)[0]
GOLD = ROW["gold_patch"]
NEAR = GOLD.replace("+    return ", "+    return (", 1).rstrip("\n") + ")\n"  # same fix, parenthesised
UNRELATED = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-old\n+new\n"
SMALL = models.TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0)


class _CountingGenerator:
    """The real HF backend, counting its ``generate`` calls."""

    def __init__(self, inner: HFGenerator):
        self.inner, self.tokenizer, self.calls = inner, inner.tokenizer, 0

    def generate(self, prompts, params):
        self.calls += 1
        return self.inner.generate(prompts, params)


def _manual_p_yes(model, tokenizer, judge: LLMJudge, predicted: str, gold: str) -> float:
    """Teacher-forced log P(spelling | prompt) per spelling, then p(yes) / (p(yes) + p(no))."""
    base = tokenizer(judge_prompt(predicted, gold), add_special_tokens=False).input_ids

    def prob(seq: tuple[int, ...]) -> float:
        ids = torch.tensor([base + list(seq)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        return math.exp(sum(logp[len(base) - 1 + j, t].item() for j, t in enumerate(seq)))

    yes = sum(prob(s) for s in judge.answers.yes)
    no = sum(prob(s) for s in judge.answers.no)
    return yes / (yes + no)


@pytest.fixture(scope="module")
def single_token_setup(tokenizer):
    """A tokenizer where yes/Yes/no are single tokens (as in real vocabularies) and a model for it."""
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(["yes", "Yes"])
    return models.build_tiny_model(tok, SMALL), tok


def test_near_miss_fixture_is_a_near_miss():
    assert NEAR != GOLD and NEAR.count("\n") == GOLD.count("\n") and "+    return (" in NEAR


@pytest.mark.parametrize("setup, single, reason", [
    ("tiny", False, "the project tokenizer splits yes into y + es: chain-rule spellings"),
    ("single", True, "yes and no are vocabulary tokens: only single-token spellings count"),
])
def test_answer_tokens(tokenizer, single_token_setup, setup, single, reason):
    tok = tokenizer if setup == "tiny" else single_token_setup[1]
    answers = answer_tokens(tok)
    assert answers.single_token is single, reason
    assert answers.yes and answers.no and not set(answers.yes) & set(answers.no), reason
    assert (tok("no", add_special_tokens=False).input_ids[0],) in answers.no, reason


def test_a_tokenizer_without_yes_is_a_clear_error():
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tmodels
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(tmodels.WordLevel({"[UNK]": 0, "no": 1}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    with pytest.raises(ValueError, match="no token sequence for yes"):
        answer_tokens(tok)


def test_judge_needs_a_tokenizer():
    class NoTokenizer:
        def generate(self, prompts, params):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="tokenizer"):
        LLMJudge(NoTokenizer())


@pytest.mark.parametrize("setup, top_logprobs, reason", [
    ("tiny", None, "small vocabulary: asked whole in one call"),
    ("tiny", 20, "multi-token spellings; missing tokens re-asked with the full vocabulary"),
    ("tiny", 1, "top-1 only: nearly every needed token is re-asked"),
    ("single", None, "single-token spellings, one step"),
])
def test_p_yes_equals_the_manual_softmax(tokenizer, tiny_model, single_token_setup, setup, top_logprobs, reason):
    model, tok = (tiny_model, tokenizer) if setup == "tiny" else single_token_setup
    generator = _CountingGenerator(HFGenerator(model, tok))
    judge = LLMJudge(generator, top_logprobs=top_logprobs)
    pairs = [(NEAR, GOLD), (UNRELATED, GOLD), (GOLD, GOLD)]
    scores = judge.batch(pairs)
    if top_logprobs is None:
        assert generator.calls == 1, "one generate call for the whole batch"
    for (pred, gold), score in zip(pairs, scores):
        assert 0.0 <= score <= 1.0, reason
        assert score == pytest.approx(_manual_p_yes(model, tok, judge, pred, gold), abs=1e-4), reason
    assert judge.batch(pairs) == scores, "deterministic"
    assert [judge(p, g) for p, g in pairs] == pytest.approx(scores, abs=1e-5), "batch == one by one"


def test_llm_judge_plugs_into_swe_reward(tokenizer, tiny_model):
    judge = LLMJudge(HFGenerator(tiny_model, tokenizer))
    reward = swe_reward(NEAR, GOLD, judge=judge)
    assert 0.0 <= reward <= 1.0
    assert reward == pytest.approx(judge(NEAR, GOLD), abs=1e-9)
    assert swe_reward(GOLD, GOLD, judge=judge) == 1.0  # identical: the judge is not asked
    assert swe_reward("no patch here", GOLD, judge=judge) == -1.0


@pytest.mark.parametrize("yes, no, expected, reason", [
    ([math.log(0.3)], [math.log(0.1)], 0.75, "0.3 / (0.3 + 0.1)"),
    ([math.log(0.1), math.log(0.1)], [math.log(0.2)], 0.5, "spellings add up"),
    ([-math.inf], [-math.inf], 0.5, "no mass on either answer: undecided"),
    ([-2000.0], [0.0], 0.0, "underflow-safe"),
    ([0.0], [-2000.0], 1.0, "underflow-safe the other way"),
])
def test_p_yes_arithmetic(yes, no, expected, reason):
    assert p_yes(yes, no) == pytest.approx(expected, abs=1e-12), reason
