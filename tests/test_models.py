"""Tokenizer and tiny model factory."""

from nemotron_cascade import chat, models


def test_think_and_tool_tags_survive_skip_special_tokens(tokenizer):
    text = "<think>\n1 + 2 = 3\n</think>\n\n<tool_call>\n{}\n</tool_call><|im_end|>"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == text.replace("<|im_end|>", "")


def test_tags_and_chat_markers_are_single_tokens(tokenizer):
    for tag in [chat.THINK_OPEN, chat.THINK_CLOSE, chat.TOOL_CALL_OPEN, chat.IM_START, chat.IM_END]:
        assert len(tokenizer(tag, add_special_tokens=False).input_ids) == 1, tag


def test_digits_are_split_one_by_one(tokenizer):
    tokens = tokenizer.tokenize("12345")
    assert [t for t in tokens if t.strip("Ġ")] == ["1", "2", "3", "4", "5"]


def test_eos_is_im_end_and_template_is_stored(tokenizer):
    assert tokenizer.eos_token == chat.IM_END
    assert tokenizer.chat_template == chat.CHAT_TEMPLATE


def test_tiny_model_has_the_requested_size(tokenizer, tiny_model):
    assert tiny_model.config.vocab_size == len(tokenizer)
    assert tiny_model.config.model_type == "qwen3"
    assert 10_000 < models.count_parameters(tiny_model) < 100_000


def test_save_and_load_pretrained_roundtrip(tmp_path, tokenizer, tiny_model):
    import torch

    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tok = models.load_model(str(tmp_path)), models.load_tokenizer(str(tmp_path))
    ids = torch.tensor([tok("2 + 3", add_special_tokens=False).input_ids])
    assert torch.allclose(model(ids).logits, tiny_model(ids).logits, atol=1e-6)
    assert tok.chat_template == chat.CHAT_TEMPLATE


def test_the_base_model_node_loads_a_pretrained_directory_in_the_profile_dtype(tmp_path, tokenizer, tiny_model):
    """``base_model.source: pretrained`` (the gpu profile) loads ``name_or_path`` with the profile's
    ``dtype`` and ``attn_implementation``; the gpu profile sets bfloat16, so the node must pass it on
    rather than load float32."""
    import pytest
    import torch

    from nemotron_cascade.pipelines.sft import nodes
    from nemotron_cascade.pipelines.sft.config import BaseModelConfig

    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    ckpt = nodes.build_base_model([], BaseModelConfig(source="pretrained", name_or_path=str(tmp_path), vocab_size=0,
                                                      tiny={}, dtype="bfloat16", attn_implementation="eager"))
    assert next(ckpt.model.parameters()).dtype == torch.bfloat16
    assert ckpt.model.config._attn_implementation == "eager"
    assert ckpt.lineage["source"] == "pretrained" and ckpt.tokenizer.get_vocab() == tokenizer.get_vocab()
    with pytest.raises(ValueError, match="name_or_path is required"):  # when Kedro builds the config, before any node
        BaseModelConfig(source="pretrained", name_or_path=None, vocab_size=0, tiny={})
