"""SFT loop: schedule values, learning, exact resume."""

import math

import pytest
import torch

from nemotron_cascade import compat
from nemotron_cascade.training import packing, sft
from nemotron_cascade.training.loop import lr_at


def test_lr_schedule_worked_by_hand():
    cfg = sft.loop_settings(sft.SFTConfig(warmup_steps=4, max_steps=14, min_lr_ratio=0.1))
    # warm-up: (step + 1) / 4
    assert lr_at(0, cfg) == 0.25 and lr_at(3, cfg) == 1.0
    # cosine over the 10 steps after warm-up: halfway (step 9) is 0.1 + 0.9 * 0.5 = 0.55
    assert math.isclose(lr_at(9, cfg), 0.55)
    assert math.isclose(lr_at(14, cfg), 0.1) and math.isclose(lr_at(100, cfg), 0.1)


def test_constant_schedule_after_warm_up_worked_by_hand():
    """GRPO and the reward model: (step + 1) / warm-up, then exactly 1 (the paper's constant RL LR)."""
    from nemotron_cascade.rl.config import GRPOConfig, loop_settings

    cfg = loop_settings(GRPOConfig(warmup_steps=4, max_steps=40))
    assert [lr_at(s, cfg) for s in (0, 1, 3, 4, 39)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert lr_at(0, loop_settings(GRPOConfig(warmup_steps=0))) == 1.0  # no warm-up: constant from step 0


def test_batches_cover_an_epoch_without_repeats():
    blocks = list(range(10))
    seen = [b for step in range(5) for b in sft.batches(blocks, 2, step, seed=0)]
    assert sorted(seen) == blocks


def _blocks(world_samples, tokenizer):
    blocks, _ = packing.prepare_blocks(world_samples, tokenizer, 512)
    return blocks


def test_training_lowers_the_loss(world_samples, tokenizer, tiny_model):
    cfg = sft.SFTConfig(lr=1e-2, max_steps=30, warmup_steps=3, batch_size=4, log_every=1)
    hist = sft.train_sft(tiny_model, _blocks(world_samples, tokenizer), cfg)
    first, last = sum(h["loss"] for h in hist[:3]) / 3, sum(h["loss"] for h in hist[-3:]) / 3
    assert last < first * 0.8


def test_resume_reproduces_uninterrupted_training_exactly(tmp_path, world_samples, tokenizer):
    from nemotron_cascade import models

    def fresh():
        return models.build_tiny_model(tokenizer, models.TinyModelConfig(
            hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))

    blocks = _blocks(world_samples, tokenizer)
    cfg = sft.SFTConfig(lr=3e-3, max_steps=8, warmup_steps=2, batch_size=2, log_every=1, checkpoint_every=4)
    straight = fresh()
    sft.train_sft(straight, blocks, cfg)

    class Crash(Exception):
        pass

    def crash_at_6(metrics, step):
        if step == 6:
            raise Crash

    resumed = fresh()
    with pytest.raises(Crash):
        sft.train_sft(resumed, blocks, cfg, on_metrics=crash_at_6, resume_dir=str(tmp_path), fingerprint="f")
    assert (tmp_path / "state.pt").exists()
    resumed = fresh()
    hist = sft.train_sft(resumed, blocks, cfg, resume_dir=str(tmp_path), fingerprint="f")
    assert [h["step"] for h in hist] == list(range(1, 9))
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n
    assert not tmp_path.exists()  # a finished stage removes its resume state


def test_resume_state_of_another_run_is_ignored(tmp_path, world_samples, tokenizer, tiny_model):
    blocks = _blocks(world_samples, tokenizer)
    cfg = sft.SFTConfig(max_steps=4, warmup_steps=1, batch_size=2, log_every=1, checkpoint_every=2)
    from nemotron_cascade.training import resume
    opt = torch.optim.AdamW(tiny_model.parameters())
    resume.save(str(tmp_path), "other-run", tiny_model, opt, None, 3, [])
    hist = sft.train_sft(tiny_model, blocks, cfg, resume_dir=str(tmp_path), fingerprint="this-run")
    assert hist[0]["step"] == 1


def test_gradient_checkpointing_trains_the_same_and_is_off_afterwards(world_samples, tokenizer):
    """Activation checkpointing (``gradient_checkpointing: true``) recomputes each layer's
    activations in the backward pass: the same losses and weights as without it (fp32, no dropout;
    recomputation can differ in the last bits, hence the tolerance), and the saved model is the
    plain one again (checkpointing switched off after the loop)."""
    from nemotron_cascade import models

    def fresh():
        return models.build_tiny_model(tokenizer, models.TinyModelConfig(
            hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))

    blocks = _blocks(world_samples, tokenizer)
    runs = {}
    for gc in (False, True):
        model = fresh()
        cfg = sft.SFTConfig(lr=3e-3, max_steps=4, warmup_steps=1, batch_size=2, log_every=1, gradient_checkpointing=gc)
        runs[gc] = (model, [h["loss"] for h in sft.train_sft(model, blocks, cfg)])
        assert not compat.is_activation_checkpointing(model)
    assert runs[True][1] == pytest.approx(runs[False][1], abs=1e-6)
    for (n, p), q in zip(runs[False][0].named_parameters(), runs[True][0].parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_gradient_checkpointing_on_a_model_without_support_is_a_clear_error(world_samples, tokenizer):
    from nemotron_cascade.training import engines

    with pytest.raises(ValueError, match="gradient_checkpointing: Linear does not support it"):
        with engines.gradient_checkpointing(torch.nn.Linear(2, 2), True):
            pass
