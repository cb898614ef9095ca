"""End of turn on a Base-style checkpoint (tests/real_model.py): its configs disagree on eos as every
Qwen3 Base checkpoint's do, and generation must stop at the chat template's end of turn anyway."""

from __future__ import annotations

import pytest
from real_model import ENDOFTEXT, IM_END, read_configs, save_qwen3_base  # tests/

from nemotron_cascade import chat, models
from nemotron_cascade.generation.base import SamplingParams
from nemotron_cascade.generation.hf import HFGenerator

LIMIT = 48


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_qwen3_base(tmp_path_factory.mktemp("qwen3-base"))


@pytest.fixture(scope="module")
def chat_tuned(base_dir):
    """The checkpoint loaded as the gpu profile loads Qwen/Qwen3-0.6B-Base, then taught for a few
    dozen steps to answer a question and close the turn with <|im_end|> (what SFT teaches)."""
    import torch

    model = models.load_model(str(base_dir), dtype="float32")
    tok = models.load_tokenizer(str(base_dir))
    texts = [chat.render([{"role": "user", "content": f"What is {a} plus {a}?"},
                          {"role": "assistant", "content": "Sure."}], enable_thinking=False)
             for a in range(10)]
    tok.padding_side = "right"  # training positions start at 0
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    tok.padding_side = "left"
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(80):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model, tok


def test_the_fixture_disagrees_on_eos_as_qwen3_base_checkpoints_do(base_dir):
    files = read_configs(base_dir)
    tok = models.load_tokenizer(str(base_dir))
    endoftext = tok.convert_tokens_to_ids(ENDOFTEXT)
    assert files["tokenizer_config.json"]["eos_token"] == IM_END
    assert files["config.json"]["eos_token_id"] == endoftext
    assert files["generation_config.json"]["eos_token_id"] == endoftext
    assert files["config.json"]["architectures"] == ["Qwen3ForCausalLM"]
    assert "<|im_start|>" in files["chat_template"] and files["chat_template"] != chat.CHAT_TEMPLATE


def test_load_tokenizer_installs_the_project_template_and_stops_on_every_end(base_dir):
    tok = models.load_tokenizer(str(base_dir))
    model = models.load_model(str(base_dir))
    assert tok.chat_template == chat.CHAT_TEMPLATE          # Qwen3's own replaced by the paper's
    im_end, endoftext = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(ENDOFTEXT)
    assert models.end_of_turn_id(tok) == im_end
    # end of turn first, then the generation config's eos
    assert models.stop_token_ids(tok, model.generation_config) == [im_end, endoftext]


def test_rollouts_of_the_base_style_checkpoint_end_before_the_limit(chat_tuned):
    model, tok = chat_tuned
    prompts = [chat.render([{"role": "user", "content": f"What is {a} plus {a}?"}], enable_thinking=False,
                           add_generation_prompt=True) for a in (3, 7)]
    done = HFGenerator(model, tok).generate(prompts, SamplingParams(max_new_tokens=LIMIT))
    for (c,) in done:
        assert c.finished and len(c.token_ids) < LIMIT and c.token_ids[-1] == tok.convert_tokens_to_ids(IM_END)
    # the trap: stopping on the generation config's eos (<|endoftext|>) only, as HF generate does by
    # default, runs every turn to the length limit
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=LIMIT, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] - enc.input_ids.shape[1] == LIMIT


def test_vllm_requests_carry_the_end_of_turn(base_dir):
    from vllm_fakes import FakeLLM, FakeSamplingParams  # tests/

    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    tok = models.load_tokenizer(str(base_dir))
    gen = VLLMGenerator(FakeLLM(), tokenizer=tok, sampling_cls=FakeSamplingParams)
    gen.generate(["hi"], SamplingParams(max_new_tokens=4))
    (sp,) = gen.llm.last[1]
    assert sp.kwargs["stop_token_ids"][0] == tok.convert_tokens_to_ids(IM_END)
