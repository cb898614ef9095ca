"""Log-probabilities from the HF backend: raw log-softmax, vLLM's top-k-plus-sampled convention."""

from __future__ import annotations

import math

import pytest
import torch

from nemotron_cascade import chat
from nemotron_cascade.generation.base import SamplingParams
from nemotron_cascade.generation.hf import HFGenerator

PROMPTS = [
    chat.render([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True),
    chat.render([{"role": "user", "content": "Fix: add(2, 3) should return 5."}], add_generation_prompt=True),
]


def _first_token_logprobs(model, tokenizer, prompt: str) -> torch.Tensor:
    """Log-softmax of the next-token logits after ``prompt``, by a plain forward pass."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids])
    with torch.no_grad():
        return torch.log_softmax(model(ids).logits[0, -1].float(), dim=-1)


def test_default_path_returns_no_logprobs(tokenizer, tiny_model):
    out = HFGenerator(tiny_model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=4))
    assert all(c.logprobs is None for row in out for c in row)


def test_greedy_first_token_matches_a_forward_pass(tokenizer, tiny_model):
    out = HFGenerator(tiny_model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=6, logprobs=5))
    for prompt, (completion,) in zip(PROMPTS, out):
        assert completion.logprobs is not None and len(completion.logprobs) == len(completion.token_ids)
        reference = _first_token_logprobs(tiny_model, tokenizer, prompt)
        first = completion.logprobs[0]
        assert len(first) == 5  # greedy: the sampled token is the top-1, already among the 5
        for token, value in first.items():
            assert value == pytest.approx(reference[token].item(), abs=1e-4)
        assert completion.token_ids[0] == max(first, key=first.get)  # greedy picks the argmax


def test_full_vocabulary_logprobs_sum_to_one(tokenizer, tiny_model):
    vocab = tiny_model.config.vocab_size
    out = HFGenerator(tiny_model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=3, logprobs=vocab))
    for (completion,) in out:
        for step in completion.logprobs:
            assert len(step) == vocab
            assert sum(math.exp(v) for v in step.values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("k, temperature, reason", [
    (0, 1.0, "k=0 still reports the sampled token"),
    (1, 1.5, "a hot sample is often not the top-1: it is added beside it"),
    (3, 0.0, "greedy: the sampled token is inside the top-k"),
])
def test_sampled_token_is_always_reported(tokenizer, tiny_model, k, temperature, reason):
    params = SamplingParams(max_new_tokens=8, temperature=temperature, n=4, seed=1, logprobs=k)
    out = HFGenerator(tiny_model, tokenizer).generate(PROMPTS, params)
    for row in out:
        for c in row:
            assert len(c.logprobs) == len(c.token_ids), reason
            for token, step in zip(c.token_ids, c.logprobs):
                assert token in step and k <= len(step) <= k + 1, reason
                assert all(v <= 0.0 for v in step.values()), reason


def test_raw_logprobs_do_not_depend_on_temperature(tokenizer, tiny_model):
    """Same first token forced by greedy vs. sampling: the reported distribution is the raw one."""
    gen = HFGenerator(tiny_model, tokenizer)
    hot = gen.generate(PROMPTS[:1], SamplingParams(max_new_tokens=1, temperature=3.0, logprobs=4))[0][0]
    reference = _first_token_logprobs(tiny_model, tokenizer, PROMPTS[0])
    for token, value in hot.logprobs[0].items():
        assert value == pytest.approx(reference[token].item(), abs=1e-4)


def test_negative_logprobs_is_an_error(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="logprobs"):
        HFGenerator(tiny_model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=1, logprobs=-1))


@pytest.mark.parametrize("row, finished, kept, reason", [
    ([5, "pad", 7], False, [5, "pad", 7], "a row that did not stop is all samples: a sampled pad id stays"),
    ([5, "stop", "pad", "pad"], True, [5, "stop"], "a stopped row: cut after its stop (generate's padding follows)"),
    (["pad", "stop", 9], True, ["pad", "stop"], "a pad sampled before the stop stays too"),
])
def test_a_completion_is_cut_at_its_stop_and_never_loses_a_sampled_pad(tokenizer, tiny_model, row, finished, kept,
                                                                       reason):
    gen = HFGenerator(tiny_model, tokenizer)
    ids = {"pad": tokenizer.pad_token_id, "stop": gen.stop_ids[0]}
    assert ids["pad"] not in gen.stop_ids
    c = gen._completion([ids.get(t, t) for t in row], [{0: 0.0}] * len(row))
    assert c.token_ids == [ids.get(t, t) for t in kept] and c.finished is finished, reason
    assert len(c.logprobs) == len(kept), reason
