"""``GRPOConfig.logits_chunk_tokens`` through the GRPO step: with the chunked LM head a step gives
the loss, gradient norm, entropy and gradients of the unchunked path (within 1e-5)."""

import pytest
import torch

from nemotron_cascade import models
from nemotron_cascade.rl import trainer
from nemotron_cascade.rl.trainer import GRPOConfig, RolloutBatch

TOL = 1e-5


def _model(tokenizer):
    return models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))


def _batch():
    """Ragged prompts and completions; sample 2 truncated (masked by the overlong filter)."""
    return RolloutBatch(prompt_ids=[[5, 6], [5, 6], [7, 8, 9], [7, 8, 9], [20], [21, 22, 23, 24]],
                        completion_ids=[[10, 11, 1], [12], [13, 14], [15, 16, 17, 1], [30, 31, 32, 33, 34, 1], [1]],
                        finished=[True, True, False, True, True, True], texts=list("abcdef"), rows=[{}] * 6)


@pytest.mark.parametrize("micro, chunk, reason", [
    (6, 4, "one micro-batch, 4 does not divide its 17 completion tokens"),
    (4, 1, "two micro-batches (gradient accumulation), one token per chunk"),
    (2, 64, "three micro-batches, each one chunk"),
])
def test_a_grpo_step_is_the_same_with_the_chunked_head(tokenizer, micro, chunk, reason):
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
    runs = []
    for knob in (None, chunk):
        model = _model(tokenizer)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        cfg = GRPOConfig(micro_batch_size=micro, grad_clip=1e9, logits_chunk_tokens=knob)
        metrics = trainer.grpo_step(model, opt, _batch(), adv, cfg, tokenizer.pad_token_id)
        runs.append((metrics, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    (full, grad_full), (chunked, grad_chunked) = runs
    assert full["trained_tokens"] == chunked["trained_tokens"] == 15, reason  # 17 minus sample 2's 2 (filtered)
    for key in ("loss", "grad_norm", "entropy"):
        assert abs(full[key] - chunked[key]) < TOL, (key, reason)
    assert torch.allclose(grad_full, grad_chunked, rtol=TOL, atol=TOL), reason
