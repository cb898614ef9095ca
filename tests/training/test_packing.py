"""Assistant-only masking and packing (with block-diagonal attention)."""

import pytest
import torch

from nemotron_cascade.training import packing


def _sample(turns, tools=None):
    return {"id": "s", "messages": turns, "tools": tools}


def test_loss_mask_covers_exactly_the_last_assistant_turn(tokenizer):
    s = _sample([{"role": "user", "content": "a"}, {"role": "assistant", "content": "FIRST"},
                 {"role": "user", "content": "b"}, {"role": "assistant", "content": "<think>\nx\n</think>\n\nSECOND"}])
    t = packing.tokenize_sample(s, tokenizer)
    trained = tokenizer.decode([i for i, m in zip(t.input_ids, t.loss_mask) if m])
    assert trained == "<think>\nx\n</think>\n\nSECOND<|im_end|>"


def test_sample_without_assistant_turn_is_named(tokenizer):
    with pytest.raises(ValueError, match="no assistant turn"):
        packing.tokenize_sample(_sample([{"role": "user", "content": "a"}]), tokenizer)


def test_packing_keeps_every_token_and_is_efficient(world_samples, tokenizer):
    toks = [packing.tokenize_sample(s, tokenizer) for s in world_samples]
    toks = [t for t in toks if len(t.input_ids) <= 512]
    blocks = packing.pack(toks, 512, tokenizer.pad_token_id)
    assert sum(b.n_real for b in blocks) == sum(len(t.input_ids) for t in toks)
    assert all(len(b.input_ids) == 512 for b in blocks)
    assert packing.packing_efficiency(blocks) > 0.95


def test_too_long_sample_is_refused_not_truncated(tokenizer):
    t = packing.TokenizedSample([1] * 10, [True] * 10)
    with pytest.raises(ValueError, match="exceed block_size=8"):
        packing.pack([t], 8, 0)


def test_position_ids_restart_per_sample_and_labels_mask_padding():
    a = packing.TokenizedSample([5, 6, 7], [False, True, True])
    b = packing.TokenizedSample([8, 9], [False, True])
    (block,) = packing.pack([a, b], 8, pad_id=0)
    assert block.position_ids == [0, 1, 2, 0, 1, 0, 1, 2]
    assert block.labels == [-100, 6, 7, -100, 9, -100, -100, -100]


def test_packed_samples_do_not_attend_to_each_other(tokenizer, tiny_model):
    """Logits of a sample packed second equal its logits alone: the mask is block-diagonal."""
    a = tokenizer("<|im_start|>user\nfirst sample here", add_special_tokens=False).input_ids
    b = tokenizer("<|im_start|>user\nsecond one", add_special_tokens=False).input_ids
    packed = torch.tensor([a + b])
    pos = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    together = tiny_model(input_ids=packed, position_ids=pos, use_cache=False).logits[0, len(a):]
    alone = tiny_model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
    assert torch.allclose(together, alone, atol=1e-5)
