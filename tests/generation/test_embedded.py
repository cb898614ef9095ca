"""The embedded rollout engine against HF ``generate`` and the training forward.

The benchmark's setting (benchmarks/bench_decode.py): the base profile's model shape (hidden 128,
4 layers, 4 query and 2 key/value heads, vocabulary 1,024 trained on 128 world math prompts), random
weights, 64 rendered world math prompts left-padded into one batch, 40 new tokens.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from nemotron_cascade import chat, models
from nemotron_cascade.data import sft, world
from nemotron_cascade.generation import embedded
from nemotron_cascade.generation.base import SamplingParams
from nemotron_cascade.generation.embedded import EmbeddedGenerator, build_embedded
from nemotron_cascade.generation.hf import HFGenerator

NEAR_TIE = 1e-4      # a greedy token may differ from HF's only where its top-2 logits are this close
LOGPROB_TOL = 1e-4   # per-token log-probs against the training forward (rl/update.py)


@pytest.fixture(scope="module")
def bench():
    """bench_decode.py's model and prompts: ``(model, tokenizer, 64 prompts)``."""
    rows = world.generate_tasks("math", "rl", 128, 0)
    samples = sft.teacher_samples(rows, 1.0, 0.0, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 1024)
    model = models.build_tiny_model(tok, models.TinyModelConfig(seed=0)).eval()
    return model, tok, [world.render_prompt(rows[i], True) for i in range(64)]


def first_token_gap(model, tokenizer, prompt: str, prefix: list[int]) -> float:
    """Top-1 minus top-2 logit of the next token after ``prompt + prefix`` (a plain HF forward)."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids + prefix])
    with torch.no_grad():
        top = model(ids).logits[0, -1].float().topk(2).values
    return float(top[0] - top[1])


def assert_greedy_matches_hf(model, tokenizer, prompts, params, stop_ids=None) -> list:
    """Greedy completions of both engines: identical on >= 99% of the prompts, and every difference
    starts at a near-tie of HF's top-2 logits. Returns the embedded engine's completions."""
    hf, emb = HFGenerator(model, tokenizer), EmbeddedGenerator(model, tokenizer)
    if stop_ids is not None:
        hf.stop_ids = emb.stop_ids = stop_ids
    ours, theirs = emb.generate(prompts, params), hf.generate(prompts, params)
    differ = 0
    for prompt, (a,), (b,) in zip(prompts, ours, theirs):
        mine = a.token_ids
        if mine == b.token_ids:
            assert (a.text, a.finished) == (b.text, b.finished)
            continue
        differ += 1
        step = next(i for i, (x, y) in enumerate(zip(mine, b.token_ids)) if x != y)
        gap = first_token_gap(model, tokenizer, prompt, b.token_ids[:step])
        assert gap < NEAR_TIE, f"greedy differs from HF at step {step} of {prompt!r} with a top-2 gap of {gap}"
    assert differ <= 0.01 * len(prompts), f"{differ} of {len(prompts)} greedy completions differ from HF's"
    return [row[0] for row in ours]


def test_greedy_tokens_match_hf_on_the_benchmark(bench):
    model, tok, prompts = bench
    out = assert_greedy_matches_hf(model, tok, prompts, SamplingParams(max_new_tokens=40))
    assert len(out) == 64 and all(len(c.token_ids) <= 40 for c in out)


def test_greedy_matches_hf_when_rows_stop_and_leave_the_batch(bench, monkeypatch):
    """A frequent token made a stop id: rows end at different steps, the batch is compacted."""
    model, tok, prompts = bench
    plain = EmbeddedGenerator(model, tok).generate(prompts, SamplingParams(max_new_tokens=40))
    frequent = Counter(t for (c,) in plain for t in c.token_ids[3:]).most_common(1)[0][0]
    kept = []
    original = embedded.Batch.keep
    monkeypatch.setattr(embedded.Batch, "keep", lambda self, index: (kept.append(len(index)),
                                                                     original(self, index))[1])
    stops = EmbeddedGenerator(model, tok).stop_ids + [frequent]
    out = assert_greedy_matches_hf(model, tok, prompts, SamplingParams(max_new_tokens=40), stops)
    finished = [c for c in out if c.finished]
    assert len(finished) >= 16 and kept, "the case must stop a quarter of the rows and compact the batch"
    assert all(c.token_ids[-1] in stops for c in finished)


def test_greedy_matches_hf_on_a_base_style_checkpoint(tmp_path):
    """Another shape (head_dim 16, rope_theta 1e6, bf16 weights loaded as float32, the template's
    <|im_end|> and the config's <|endoftext|> both stop ids), chat prompts, small batches."""
    from real_model import save_qwen3_base  # tests/

    path = save_qwen3_base(tmp_path / "base")
    model, tok = models.load_model(str(path)), models.load_tokenizer(str(path))
    prompts = [chat.render([{"role": "user", "content": f"What is {a} plus {a * 3}?"}], add_generation_prompt=True)
               for a in range(12)]
    params = SamplingParams(max_new_tokens=24)
    assert_greedy_matches_hf(model, tok, prompts, params)
    emb = EmbeddedGenerator(model, tok, batch_size=5)
    assert emb.generate(prompts, params) == EmbeddedGenerator(model, tok, batch_size=64).generate(prompts, params)


@pytest.mark.parametrize("temperature, top_p, reason", [
    (0.0, 1.0, "greedy: the argmax's log-prob"),
    (1.0, 1.0, "sampled tokens: the raw log-softmax, not the tempered one"),
    (1.7, 0.8, "hot, cut by top-p: still the raw distribution's log-prob"),
])
def test_logprobs_match_the_training_forward(bench, temperature, top_p, reason):
    from nemotron_cascade.rl.update import sequence_logprobs

    model, tok, prompts = bench
    params = SamplingParams(max_new_tokens=40, temperature=temperature, top_p=top_p, n=2, seed=3, logprobs=2)
    out = EmbeddedGenerator(model, tok).generate(prompts[:24], params)
    prompt_ids = [tok(p, add_special_tokens=False).input_ids for p in prompts[:24] for _ in range(2)]
    completions = [c for row in out for c in row]
    with torch.no_grad():
        reference, mask, _ = sequence_logprobs(model, prompt_ids, [c.token_ids for c in completions],
                                               tok.pad_token_id)
    for r, c in enumerate(completions):
        assert len(c.logprobs) == len(c.token_ids) == int(mask[r].sum()), reason
        for t, (token, step) in enumerate(zip(c.token_ids, c.logprobs)):
            assert token in step and 2 <= len(step) <= 3, reason
            assert step[token] == pytest.approx(float(reference[r, t]), abs=LOGPROB_TOL), reason


def test_full_vocabulary_logprobs_sum_to_one(tokenizer, tiny_model):
    vocab = tiny_model.config.vocab_size
    prompt = chat.render([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True)
    (c,), = EmbeddedGenerator(tiny_model, tokenizer).generate([prompt], SamplingParams(max_new_tokens=3,
                                                                                       logprobs=vocab))
    for step in c.logprobs:
        assert len(step) == vocab and sum(math.exp(v) for v in step.values()) == pytest.approx(1.0, abs=1e-4)


def test_reads_the_live_weights_after_an_optimiser_step(tokenizer, tiny_model):
    """No copy to sync: after a step the same generator decodes the new weights (the log-probs of
    its first tokens are the updated model's, not the old one's)."""
    prompts = [chat.render([{"role": "user", "content": f"Add {a} and 4."}], add_generation_prompt=True)
               for a in range(6)]
    params = SamplingParams(max_new_tokens=6, logprobs=3)
    gen = build_embedded(tiny_model, tokenizer, batch_size=4)

    def first_logprobs(out):
        return [c.logprobs[0] for (c,) in out]

    def forward_logprobs(prompt):
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids])
        with torch.no_grad():
            return torch.log_softmax(tiny_model(ids).logits[0, -1].float(), -1)

    before = first_logprobs(gen.generate(prompts, params))
    opt = torch.optim.SGD(tiny_model.parameters(), lr=5.0)
    ids = torch.tensor([tokenizer(prompts[0] + "Nine.", add_special_tokens=False).input_ids])
    tiny_model(ids, labels=ids).loss.backward()
    opt.step()
    after = first_logprobs(gen.generate(prompts, params))
    for prompt, old, new in zip(prompts, before, after):
        reference = forward_logprobs(prompt)
        assert all(v == pytest.approx(float(reference[t]), abs=LOGPROB_TOL) for t, v in new.items())
        assert any(abs(float(reference[t]) - v) > 1e-3 for t, v in old.items()), "the step changed nothing"


def test_samples_n_per_prompt_seeded(tokenizer, tiny_model):
    prompts = [chat.render([{"role": "user", "content": q}], add_generation_prompt=True)
               for q in ("What is 2 + 3?", "Name a city.")]
    gen = EmbeddedGenerator(tiny_model, tokenizer)
    params = SamplingParams(max_new_tokens=10, temperature=1.0, n=5, seed=7)
    out = gen.generate(prompts, params)
    assert [len(row) for row in out] == [5, 5]
    assert gen.generate(prompts, params) == out                     # same seed, same samples
    assert gen.generate(prompts, SamplingParams(max_new_tokens=10, temperature=1.0, n=5, seed=8)) != out
    assert len({tuple(c.token_ids) for c in out[0]}) > 1            # the n samples differ


@pytest.mark.parametrize("temperature, top_p, reason", [
    (1.0, 1.0, "plain sampling follows softmax(logits)"),
    (0.5, 1.0, "temperature sharpens: softmax(logits / T)"),
    (1.0, 0.7, "top-p keeps the smallest top set holding 0.7 of the mass, renormalised"),
    (2.0, 0.9, "temperature first, then top-p on the tempered distribution (HF's order)"),
])
def test_sampler_draws_the_tempered_top_p_distribution(temperature, top_p, reason):
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    expected = torch.softmax(logits / temperature, -1)
    order = expected.argsort(descending=True)
    cut = (expected[order].cumsum(0) - expected[order]) < top_p   # a token is kept while the mass above it < p
    kept = torch.zeros_like(expected).index_fill_(0, order[cut], 1.0)
    expected = expected * kept / (expected * kept).sum()
    draws = embedded.sample(logits.expand(40_000, -1), SamplingParams(temperature=temperature, top_p=top_p),
                            torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=6).float() / len(draws)
    assert torch.allclose(freq, expected, atol=0.01), (reason, freq, expected)
    assert (freq[expected == 0] == 0).all(), reason


def test_stop_token_kept_in_ids_dropped_from_text(tokenizer, tiny_model):
    """With every token a stop id, each completion is its first token, finished, with empty text
    when that token is special."""
    prompt = chat.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    gen = EmbeddedGenerator(tiny_model, tokenizer)
    gen.stop_ids = list(range(tiny_model.config.vocab_size))
    (c,), = gen.generate([prompt], SamplingParams(max_new_tokens=8))
    assert c.finished and len(c.token_ids) == 1
    assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("change, match, reason", [
    ({"attention_bias": True}, "attention_bias", "the decoder has no bias terms"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings", "the LM head is read as the embedding"),
    ({"hidden_act": "gelu"}, "hidden_act", "SwiGLU with SiLU only"),
])
def test_refuses_a_model_it_does_not_decode(tokenizer, change, match, reason):
    from transformers import Qwen3ForCausalLM

    config = models.tiny_config(tokenizer, models.TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2,
                                                                  num_kv_heads=1, intermediate_size=64), **change)
    with pytest.raises(ValueError, match=match):
        EmbeddedGenerator(Qwen3ForCausalLM(config), tokenizer)


def test_negative_logprobs_is_an_error(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="logprobs"):
        EmbeddedGenerator(tiny_model, tokenizer).generate(["x"], SamplingParams(max_new_tokens=1, logprobs=-1))


def test_the_embedded_engine_is_selectable_by_name():
    """``rollout_engine: embedded`` (GRPO) and ``evaluation.engine: embedded`` build it through the
    one engine factory; HF generate stays the default."""
    from nemotron_cascade.generation.embedded import EmbeddedGenerator
    from nemotron_cascade.generation.engines import make_generator
    from nemotron_cascade.rl.config import GRPOConfig

    assert GRPOConfig(rollout_engine="embedded").rollout_engine == "embedded"
    assert GRPOConfig().rollout_engine == "hf"
    tok = models.train_tokenizer(["the cat sat on the mat 123"], 300)
    model = models.build_tiny_model(tok, models.TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2,
                                                                num_kv_heads=1, intermediate_size=64))
    assert isinstance(make_generator("embedded", model, tok, 8), EmbeddedGenerator)
