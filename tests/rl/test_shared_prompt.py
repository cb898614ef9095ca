"""``GRPOConfig.share_prompt_forward`` (rl/shared_prompt.py): each distinct prompt of a micro-batch
through the model once for its group gives the plain update's log-probs, entropy and gradients
(within 1e-5), and a GRPO step its loss, gradient norm and gradients."""

import pytest
import torch

from nemotron_cascade import models
from nemotron_cascade.rl import trainer
from nemotron_cascade.rl.shared_prompt import shared_prompt_logprobs
from nemotron_cascade.rl.trainer import GRPOConfig, RolloutBatch
from nemotron_cascade.rl.update import sequence_logprobs

TOL = 1e-5


def _model(tokenizer):
    return models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))


# ragged prompts (2, 3, 1 and 4 tokens) in groups, one group split by another, ragged completions,
# an empty one, and one of a single token
PROMPTS = [[5, 6], [5, 6], [7, 8, 9], [7, 8, 9], [20], [5, 6], [21, 22, 23, 24], [21, 22, 23, 24]]
COMPLETIONS = [[10, 11, 1], [12], [13, 14], [15, 16, 17, 1], [30, 31, 32, 33, 34, 1], [], [40, 41], [1]]


def _values(model, fn):
    model.zero_grad(set_to_none=True)
    lp, mask, ent = fn()
    weights = torch.linspace(-1.0, 1.0, lp.numel()).reshape(lp.shape)
    ((lp * mask * weights).sum() / mask.sum()).backward()
    return lp.detach() * mask, ent * mask, mask, torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("chunk, reason", [
    (None, "the head over every completion position in one chunk"),
    (3, "chunks of 3, recomputed in backward"),
])
def test_values_and_gradients_equal_the_plain_update(tokenizer, chunk, reason):
    model = _model(tokenizer)
    plain = _values(model, lambda: sequence_logprobs(model, PROMPTS, COMPLETIONS, tokenizer.pad_token_id))
    shared = _values(model, lambda: shared_prompt_logprobs(model, PROMPTS, COMPLETIONS, tokenizer.pad_token_id,
                                                           chunk))
    assert torch.equal(plain[2], shared[2]), reason
    for name, a, b in zip(("log-probs", "entropy", "mask", "gradients"), plain, shared):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=TOL, atol=TOL), f"{name}: {reason}"


def test_each_distinct_prompt_goes_through_the_model_once(tokenizer):
    model = _model(tokenizer)
    rows = []
    model.get_input_embeddings().register_forward_hook(lambda m, args, out: rows.append(tuple(args[0].shape)))
    shared_prompt_logprobs(model, PROMPTS, COMPLETIONS, tokenizer.pad_token_id)
    # 4 distinct prompts (left-padded to 4), then the 8 completions (right-padded to 6) over their cache
    assert rows == [(4, 4), (8, 6)]


@pytest.mark.parametrize("micro, reason", [
    (8, "one micro-batch"),
    (3, "three micro-batches, a group split across two of them"),
])
def test_a_grpo_step_is_the_same_with_the_shared_prompt_forward(tokenizer, micro, reason):
    batch = RolloutBatch(prompt_ids=PROMPTS, completion_ids=COMPLETIONS, finished=[True] * 8, texts=list("abcdefgh"),
                         rows=[{}] * 8)
    adv = torch.linspace(-1.0, 1.0, 8)
    runs = []
    for share in (False, True):
        model = _model(tokenizer)
        cfg = GRPOConfig(micro_batch_size=micro, grad_clip=1e9, share_prompt_forward=share)
        metrics = trainer.grpo_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, adv, cfg,
                                    tokenizer.pad_token_id)
        runs.append((metrics, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    (plain, grad_plain), (shared, grad_shared) = runs
    assert plain["trained_tokens"] == shared["trained_tokens"] == 19, reason
    for key in ("loss", "grad_norm", "entropy"):
        assert abs(plain[key] - shared[key]) < TOL, (key, reason)
    assert torch.allclose(grad_plain, grad_shared, rtol=TOL, atol=TOL), reason


def test_deepspeed_with_the_shared_prompt_forward_is_refused():
    with pytest.raises(ValueError, match="share_prompt_forward runs on the torch engine only"):
        GRPOConfig(engine="deepspeed", share_prompt_forward=True)
