"""The vLLM rollout engine's logic, with fake objects shaped like vLLM's (vLLM does not run here)."""

from __future__ import annotations

import sys

import pytest
from vllm_fakes import (  # tests/
    FakeCompletionOutput,
    FakeLLM,
    FakeLogprob,
    FakeModel,
    FakeRequestOutput,
    FakeSamplingParams,
)

from nemotron_cascade.generation import vllm_engine as ve
from nemotron_cascade.generation.base import SamplingParams


def engine(sleep_level=0, **kw):
    return ve.VLLMGenerator(FakeLLM(), sleep_level=sleep_level, sampling_cls=FakeSamplingParams, **kw)


# ------------------------------------------------------------------ requests
def test_sampling_kwargs_sampled_and_greedy():
    p = SamplingParams(max_new_tokens=7, temperature=1.0, top_p=0.9, n=8, seed=3, logprobs=2)
    assert ve.sampling_kwargs(p) == {"n": 8, "temperature": 1.0, "top_p": 0.9, "max_tokens": 7, "seed": 3,
                                     "logprobs": 2}
    greedy = ve.sampling_kwargs(SamplingParams(max_new_tokens=4, top_p=0.5), seed=9)
    assert greedy == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 4, "seed": 9}
    assert "logprobs" not in greedy


@pytest.mark.parametrize("bad", [SamplingParams(n=0), SamplingParams(max_new_tokens=0), SamplingParams(logprobs=-1)])
def test_sampling_kwargs_rejects_bad_params(bad):
    with pytest.raises(ValueError):
        ve.sampling_kwargs(bad)


def test_build_requests_token_prompts_and_per_prompt_seeds():
    reqs, sps = ve.build_requests(["hi", "yo"], SamplingParams(seed=10, n=2, temperature=1.0),
                                  lambda t: [ord(c) for c in t], FakeSamplingParams)
    assert reqs == [{"prompt_token_ids": [104, 105]}, {"prompt_token_ids": [121, 111]}]
    assert [s.kwargs["seed"] for s in sps] == [10, 11] and all(s.kwargs["n"] == 2 for s in sps)
    # greedy: vLLM refuses n > 1, so one sample is asked for (and repeated by parse_outputs)
    _, greedy = ve.build_requests(["hi"], SamplingParams(n=2), lambda t: [1], FakeSamplingParams)
    assert greedy[0].kwargs["n"] == 1


# ------------------------------------------------------------------ outputs
def test_parse_completion_finished_length_and_logprobs():
    lps = [{97: FakeLogprob(-0.1), 3: FakeLogprob(-2.0)}, {0: FakeLogprob(-0.2)}]
    c = ve.parse_completion(FakeCompletionOutput(0, "a", [97, 0], -0.3, lps, "stop"), want_logprobs=True)
    assert c.finished and c.token_ids == [97, 0] and c.text == "a"
    assert c.logprobs == [{97: -0.1, 3: -2.0}, {0: -0.2}]
    assert all(isinstance(v, float) for d in c.logprobs for v in d.values())
    cut = ve.parse_completion(FakeCompletionOutput(0, "ab", [97, 98], None, None, "length"), want_logprobs=False)
    assert not cut.finished and cut.logprobs is None


def test_parse_completion_rejects_abort_and_missing_sampled_logprob():
    with pytest.raises(RuntimeError, match="abort"):
        ve.parse_completion(FakeCompletionOutput(0, "", [], None, None, "abort"), False)
    with pytest.raises(RuntimeError, match="sampled token"):
        ve.parse_completion(FakeCompletionOutput(0, "a", [97], None, [{5: FakeLogprob(-1.0)}], "stop"), True)
    with pytest.raises(RuntimeError, match="log-prob steps"):
        ve.parse_completion(FakeCompletionOutput(0, "a", [97], None, None, "stop"), True)


def test_parse_outputs_orders_by_index_and_checks_counts():
    out = FakeRequestOutput("0", [1], [FakeCompletionOutput(1, "b", [2], None, None, "length"),
                                       FakeCompletionOutput(0, "a", [1], None, None, "stop")])
    sampled = SamplingParams(n=2, temperature=1.0)  # two samples are asked for only when sampling
    [[first, second]] = ve.parse_outputs([out], sampled, 1)
    assert (first.text, second.text) == ("a", "b")
    with pytest.raises(RuntimeError, match="completions for n=3"):
        ve.parse_outputs([out], SamplingParams(n=3, temperature=1.0), 1)
    with pytest.raises(RuntimeError, match="outputs for 2 prompts"):
        ve.parse_outputs([out], sampled, 2)
    with pytest.raises(RuntimeError, match="2 completions for n=1"):  # greedy: one was asked for
        ve.parse_outputs([out], SamplingParams(n=2), 1)


# ------------------------------------------------------------------ weights
def test_vllm_weight_names_strips_wrappers_and_skips_buffers():
    sd = [("module.model.embed_tokens.weight", 1), ("module._orig_mod.model.layers.0.self_attn.q_proj.weight", 2),
          ("model.layers.0.self_attn.rotary_emb.inv_freq", 3), ("module.lm_head.weight", 4),
          ("model.layers.0.mlp.gate_proj.weight", 5)]
    assert dict(ve.vllm_weight_names(sd)) == {
        "model.embed_tokens.weight": 1, "model.layers.0.self_attn.q_proj.weight": 2, "lm_head.weight": 4,
        "model.layers.0.mlp.gate_proj.weight": 5}
    assert "lm_head.weight" not in dict(ve.vllm_weight_names(sd, tied_embeddings=True))


def test_weight_names_of_a_real_tiny_model_are_hf_names(tiny_model):
    names = [n for n, _ in ve.vllm_weight_names(("module." + n, p) for n, p in tiny_model.named_parameters())]
    assert names == [n for n, _ in tiny_model.named_parameters()]
    assert all(n.startswith(("model.", "lm_head.")) for n in names)


def test_load_weights_falls_back_to_the_v0_driver_worker_path():
    model = FakeModel()
    worker = type("W", (), {"model_runner": type("R", (), {"model": model})()})()
    llm = type("L", (), {"llm_engine": type("E", (), {
        "model_executor": type("X", (), {"driver_worker": worker})()})()})()
    ve.load_weights(llm, [("a", 1)])
    assert model.loaded == [[("a", 1)]]


# ------------------------------------------------------------------ the engine
def test_generate_matches_the_generator_protocol():
    gen = engine()
    out = gen.generate(["p0", "p1"], SamplingParams(max_new_tokens=3, temperature=1.0, n=2, seed=4, logprobs=1))
    assert len(out) == 2 and all(len(g) == 2 for g in out)
    first, second = out[0]
    assert first.finished and first.token_ids == [97, 98, 0] and first.text == "ab"
    assert not second.finished and second.token_ids == [97, 98, 99]
    assert first.logprobs == [{97: -0.5, 5: -1.5}, {98: -0.5, 5: -1.5}, {0: -0.5, 5: -1.5}]
    prompts, sps = gen.llm.last
    assert prompts[0] == {"prompt_token_ids": [112, 48]} and [s.kwargs["seed"] for s in sps] == [4, 5]
    assert gen.generate([], SamplingParams()) == []


def test_sleep_and_sync_sequence_level1():
    gen = engine(sleep_level=1)
    gen.generate(["p"], SamplingParams())
    assert gen.llm.calls == [("generate", 1), ("sleep", 1)]
    gen.llm.calls.clear()
    n = gen.sync_weights([("module.model.norm.weight", 1), ("module.lm_head.weight", 2)])
    assert n == 2 and gen.llm.model.loaded == [[("model.norm.weight", 1), ("lm_head.weight", 2)]]
    assert gen.llm.calls == [("wake_up", ("weights",)), ("apply_model",), ("wake_up", ("kv_cache",)),
                             ("reset_prefix_cache",)]
    gen.llm.calls.clear()
    gen.generate(["p"], SamplingParams())  # awake after a sync: no extra wake_up
    assert gen.llm.calls == [("generate", 1), ("sleep", 1)]
    gen.llm.calls.clear()
    gen.generate(["p"], SamplingParams())  # asleep (level 1, weights kept): wakes everything
    assert gen.llm.calls == [("wake_up", None), ("generate", 1), ("sleep", 1)]
    assert gen.version == 1


def test_level2_sleep_refuses_to_generate_before_a_sync():
    gen = engine(sleep_level=2)
    gen.generate(["p"], SamplingParams())
    with pytest.raises(RuntimeError, match="sync_weights"):
        gen.generate(["p"], SamplingParams())
    gen.sync_weights([("model.norm.weight", 1)])
    assert not gen.stale and gen.generate(["p"], SamplingParams())[0][0].finished


def test_no_sleep_mode_sync_is_load_then_reset():
    gen = engine()
    gen.sync_weights([("model.norm.weight", 1)])
    assert gen.llm.calls == [("apply_model",), ("reset_prefix_cache",)]
    with pytest.raises(ValueError):
        gen.sync_weights([("model.layers.0.self_attn.rotary_emb.inv_freq", 1)])
    with pytest.raises(ValueError):
        ve.VLLMGenerator(FakeLLM(), sleep_level=3, sampling_cls=FakeSamplingParams)


def test_missing_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install '\.\[gpu\]'"):
        ve.VLLMGenerator.from_pretrained("some/model")
    with pytest.raises(ImportError, match="gpu"):
        ve.VLLMGenerator(FakeLLM())  # no sampling_cls given: needs vllm.SamplingParams
