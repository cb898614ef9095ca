"""The CPU stand-in for vLLM (tests/cpu_vllm/vllm) refuses what vLLM refuses, and the project's
VLLMGenerator works against it: generation, end of turn, weight sync across the engine boundary,
sleep. The refusals are vLLM's own (vllm/sampling_params.py, vllm/v1/serial_utils.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from real_model import save_qwen3_base  # tests/

from nemotron_cascade import models
from nemotron_cascade.generation.base import SamplingParams

_SPEC = importlib.util.spec_from_file_location("cpu_vllm", Path(__file__).parents[1] / "cpu_vllm/vllm/__init__.py")
vllm = importlib.util.module_from_spec(_SPEC)
sys.modules["cpu_vllm"] = vllm  # under its own name: `import vllm` stays the real (absent) one
_SPEC.loader.exec_module(vllm)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return str(save_qwen3_base(tmp_path_factory.mktemp("qwen3-base")))


@pytest.fixture
def engine(base_dir, monkeypatch):
    """VLLMGenerator.from_pretrained on the stand-in, imported as ``vllm``."""
    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    return VLLMGenerator.from_pretrained(base_dir, dtype="float32", sleep_level=1, max_model_len=256)


SAMPLING_REFUSALS = [  # (kwargs, vLLM's words, why vLLM refuses)
    ({"n": 4, "temperature": 0.0}, "n must be 1 when using greedy sampling, got 4", "greedy samples are all equal"),
    ({"temperature": 2.5}, "temperature must be in [0, 2]", "vLLM caps temperature at 2"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]", "an empty nucleus"),
    ({"max_tokens": 0}, "max_tokens must be at least 1", "nothing to generate"),
    ({"logprobs": -2}, "logprobs must be non-negative or -1", "-1 means all, below that is meaningless"),
    ({"stop_token_ids": ["<|im_end|>"]}, "stop_token_ids must contain only integers", "ids, not strings"),
    ({"max_new_tokens": 8}, "Unexpected keyword argument 'max_new_tokens'", "HF's name is not vLLM's"),
]


@pytest.mark.parametrize("kwargs, words, why", SAMPLING_REFUSALS)
def test_sampling_params_refuse_what_vllm_refuses(kwargs, words, why):
    with pytest.raises((ValueError, TypeError)) as err:
        vllm.SamplingParams(**kwargs)
    assert words in str(err.value), why


@pytest.mark.parametrize("kwargs, words, why", [
    ({"max_model_len": 10**6}, "is greater than the derived max_model_len", "past the model's positions"),
    ({"gpu_memory_utilization": 1.5}, "GPU memory utilization must be within (0, 1]", "a share of the GPU"),
    ({"max_num_tokens": 4}, "unexpected keyword argument 'max_num_tokens'", "EngineArgs has no such field"),
])
def test_the_engine_refuses_what_vllm_refuses(base_dir, kwargs, words, why):
    with pytest.raises((ValueError, TypeError)) as err:
        vllm.LLM(base_dir, **kwargs)
    assert words in str(err.value), why


def test_an_rpc_payload_is_refused_across_the_engine_process_unless_insecure_serialisation(base_dir, monkeypatch):
    from nemotron_cascade.generation.vllm_engine import _LoadWeights

    llm = vllm.LLM(base_dir, dtype="float32")
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    monkeypatch.delenv("VLLM_ALLOW_INSECURE_SERIALIZATION", raising=False)
    with pytest.raises(TypeError, match="is not serializableSet VLLM_ALLOW_INSECURE_SERIALIZATION=1"):
        llm.apply_model(_LoadWeights([]))
    monkeypatch.setenv("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
    assert llm.apply_model(_LoadWeights([])) == [None]        # pickled across: allowed
    monkeypatch.delenv("VLLM_ALLOW_INSECURE_SERIALIZATION")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    assert llm.apply_model(_LoadWeights([])) == [None]        # in-process engine: no serialiser


def test_a_prompt_past_max_model_len_and_too_many_logprobs_are_refused(base_dir):
    llm = vllm.LLM(base_dir, dtype="float32", max_model_len=8)
    with pytest.raises(ValueError, match="is longer than the maximum model length of 8"):
        llm.generate([{"prompt_token_ids": list(range(8))}], vllm.SamplingParams())
    with pytest.raises(ValueError, match="greater than max allowed: 20"):
        llm.generate([{"prompt_token_ids": [1]}], vllm.SamplingParams(logprobs=21))


def test_vllm_generator_syncs_weights_in_process_and_stops_at_end_of_turn(engine, base_dir):
    import torch

    tok = models.load_tokenizer(base_dir)
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    before = engine.generate(["Hello"], params)[0][0]
    assert engine.asleep  # slept after generating: the optimiser gets the memory
    trainer = models.load_model(base_dir, dtype="float32")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in trainer.parameters():
            p.normal_(0.0, 0.5)  # a very different policy
    assert engine.sync_weights(trainer.named_parameters()) > 0
    after = engine.generate(["Hello"], params)[0][0]
    assert after.token_ids != before.token_ids              # the engine samples the synced weights
    assert engine.stop_ids[0] == tok.convert_tokens_to_ids("<|im_end|>")
    (sp,) = [vllm.SamplingParams(**kw) for kw in [{"stop_token_ids": engine.stop_ids}]]
    assert sp.stop_token_ids == engine.stop_ids


def test_greedy_with_several_samples_asks_vllm_for_one_and_repeats_it(engine):
    """vLLM refuses n > 1 at temperature 0 (the stand-in too, as tested above): the engine asks for
    one greedy sample and returns it n times, distinct objects."""
    (group,) = engine.generate(["Hello"], SamplingParams(max_new_tokens=4, temperature=0.0, n=3))
    assert len(group) == 3 and len({tuple(c.token_ids) for c in group}) == 1
    assert group[0] is not group[1]


def test_the_vllm_engine_generates_what_hf_generate_does_greedily(base_dir, monkeypatch):
    """Evaluation and localisation on the profile's engine (generation/engines.py): the vLLM path
    (a copy of the model in a temporary directory, on the stand-in) and HF generate give the same
    greedy tokens for the same model."""
    from nemotron_cascade.generation.engines import make_generator

    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    model, tok = models.load_model(base_dir, dtype="float32"), models.load_tokenizer(base_dir)
    prompts = ["What is 2 plus 2?", "Name a colour."]
    params = SamplingParams(max_new_tokens=6, temperature=0.0)
    on_vllm = make_generator("vllm", model, tok, vllm={"dtype": "float32"}).generate(prompts, params)
    on_hf = make_generator("hf", model, tok).generate(prompts, params)
    assert [c[0].token_ids for c in on_vllm] == [c[0].token_ids for c in on_hf]
    with pytest.raises(ValueError, match="generation engine must be one of"):
        make_generator("sglang", model, tok)
