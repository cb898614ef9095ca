"""The on-policy GRPO loop: schedules, the prompt pool, log-probs, the step, learning, resume, rollout
shards and the vLLM rollout engine's weight sync (on a fake ``vllm.LLM``)."""

from pathlib import Path

import pytest
import torch
from vllm_fakes import FakeCompletionOutput, FakeLLM, FakeRequestOutput, FakeSamplingParams  # tests/

from nemotron_cascade import compat, models
from nemotron_cascade.config import config_from_params
from nemotron_cascade.generation.base import Completion
from nemotron_cascade.generation.hf import HFGenerator
from nemotron_cascade.rl import trainer
from nemotron_cascade.rl.trainer import GRPOConfig, PromptPool, RolloutBatch


def _render(row, thinking):
    return f"<|im_start|>user\n{row['prompt']}<|im_end|>\n<|im_start|>assistant\n"


def _digit_share(responses, rows):
    """Graded toy reward: the share of a response's characters that are digits."""
    return [sum(c.isdigit() for c in r) / max(1, len(r)) for r in responses]


ROWS = [{"id": f"t{i}", "prompt": f"Write something {i}."} for i in range(6)]


def _model(tokenizer):
    return models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step, expected, reason", [
    (0, 96, "the first entry starts at step 0"),
    (19, 96, "still before the second entry"),
    (20, 128, "an entry applies from its own step on"),
    (39, 128, "between the second and the third"),
    (1000, 160, "the last entry holds for ever"),
])
def test_length_curriculum(step, expected, reason):
    assert trainer.max_tokens_at(step, [[0, 96], [20, 128], [40, 160]]) == expected, reason


def test_config_rejects_what_grpo_cannot_do():
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(group_size=1)  # one sample per group: every advantage is 0
    with pytest.raises(ValueError, match="start at step 0"):
        GRPOConfig(length_schedule=((5, 64),))
    with pytest.raises(ValueError, match="thinking_ratio"):
        GRPOConfig(thinking_ratio=1.5)


def test_config_from_yaml_lists():
    cfg = config_from_params(trainer.GRPOConfig, {"length_schedule": [[0, 8], [2, 16]], "betas": [0.9, 0.99]})
    assert cfg.length_schedule == ((0, 8), (2, 16)) and cfg.betas == (0.9, 0.99)


# ---------------------------------------------------------------------------------------------
def test_pool_visits_every_prompt_once_per_epoch():
    pool = PromptPool(10, seed=0, dynamic_filter=False, readmit_prob=0.0)
    first = pool.take(4) + pool.take(4) + pool.take(2)
    assert sorted(first) == list(range(10)) and pool.epoch == 0
    pool.take(1)
    assert pool.epoch == 1


def test_pool_drops_zero_variance_prompts_next_epoch():
    pool = PromptPool(6, seed=0, dynamic_filter=True, readmit_prob=0.0)
    for i in pool.take(6):
        pool.report(i, zero_variance=i in (1, 4))  # prompts 1 and 4 were all right or all wrong
    nxt = pool.take(4)
    assert pool.epoch == 1 and pool.filtered == 2 and sorted(nxt) == [0, 2, 3, 5]


def test_pool_readmits_filtered_prompts_with_probability_one():
    pool = PromptPool(6, seed=0, dynamic_filter=True, readmit_prob=1.0)
    for i in pool.take(6):
        pool.report(i, zero_variance=True)
    assert sorted(pool.take(6)) == list(range(6)) and pool.filtered == 0


def test_pool_refills_when_every_prompt_would_be_filtered():
    pool = PromptPool(3, seed=0, dynamic_filter=True, readmit_prob=0.0)
    for i in pool.take(3):
        pool.report(i, zero_variance=True)
    assert sorted(pool.take(3)) == [0, 1, 2]


def test_pool_without_dynamic_filter_keeps_everything():
    pool = PromptPool(4, seed=0, dynamic_filter=False, readmit_prob=0.0)
    for i in pool.take(4):
        pool.report(i, zero_variance=True)
    assert sorted(pool.take(4)) == [0, 1, 2, 3]


def test_pool_state_round_trip_continues_identically():
    a = PromptPool(7, seed=3, dynamic_filter=True, readmit_prob=0.5)
    for i in a.take(5):
        a.report(i, zero_variance=i % 2 == 0)
    b = PromptPool(7, seed=3, dynamic_filter=True, readmit_prob=0.5)
    b.load_state_dict(a.state_dict())
    assert [a.take(3) for _ in range(4)] == [b.take(3) for _ in range(4)]


# ---------------------------------------------------------------------------------------------
def test_sequence_logprobs_match_a_slow_per_sample_loop(tokenizer):
    model = _model(tokenizer).eval()
    prompts = [[5, 6, 7], [8, 9]]
    completions = [[10, 11], [12, 13, 14, 1]]
    with torch.no_grad():
        lp, mask, ent = trainer.sequence_logprobs(model, prompts, completions, tokenizer.pad_token_id)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    for b, (p, c) in enumerate(zip(prompts, completions)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + c])).logits[0].log_softmax(-1)
        for k, tok in enumerate(c):  # token k of the completion is predicted at position len(p)+k-1
            assert torch.isclose(lp[b, k], logits[len(p) + k - 1, tok], atol=1e-5)
    assert (ent[mask.bool()] > 0).all()


def _batch(tokenizer):
    return RolloutBatch(prompt_ids=[[5, 6], [5, 6], [7, 8, 9], [7, 8, 9]],
                        completion_ids=[[10, 11, 1], [12], [13, 14], [15, 16, 17, 1]],
                        finished=[True, True, False, True], texts=["a", "b", "c", "d"],
                        rows=[{}, {}, {}, {}])


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_micro_batching_gives_the_whole_batch_token_mean(tokenizer):
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    grads = []
    for micro in (4, 1):
        model = _model(tokenizer)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        cfg = GRPOConfig(micro_batch_size=micro, overlong_filter=False, grad_clip=1e9)
        m = trainer.grpo_step(model, opt, _batch(tokenizer), adv, cfg, tokenizer.pad_token_id)
        grads.append(_grads(model))
        losses = m["loss"]
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert losses != 0.0


def test_overlong_filter_masks_truncated_responses(tokenizer):
    # only sample 2 is truncated; giving it all the advantage and filtering it leaves no gradient
    adv = torch.tensor([0.0, 0.0, 1.0, 0.0])
    model = _model(tokenizer)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    m = trainer.grpo_step(model, opt, _batch(tokenizer), adv, GRPOConfig(overlong_filter=True),
                          tokenizer.pad_token_id)
    assert m["grad_norm"] == 0.0
    m = trainer.grpo_step(model, opt, _batch(tokenizer), adv, GRPOConfig(overlong_filter=False),
                          tokenizer.pad_token_id)
    assert m["grad_norm"] > 0.0


def test_shuffled_rewards_keep_the_values_but_not_their_owners():
    batch = RolloutBatch([[]] * 8, [[]] * 8, [True] * 8, [str(i) for i in range(8)], [{}] * 8)
    reward = lambda responses, rows: [float(r) for r in responses]  # noqa: E731
    raw, trained, adv = trainer.score(batch, reward, GRPOConfig(group_size=4, shuffle_rewards=True), step=0)
    assert sorted(trained.tolist()) == raw.tolist() and trained.tolist() != raw.tolist()
    raw, trained, adv = trainer.score(batch, reward, GRPOConfig(group_size=4), step=0)
    assert trained.tolist() == raw.tolist()
    # worked by hand: group [0,1,2,3] has mean 1.5 and population std sqrt(1.25) = 1.118
    assert torch.allclose(adv[:4], torch.tensor([-1.3416, -0.4472, 0.4472, 1.3416]), atol=1e-3)


# ---------------------------------------------------------------------------------------------
def _run(tokenizer, shuffle, steps=25, resume_dir=None, on_metrics=None, model=None):
    model = model or _model(tokenizer)
    cfg = GRPOConfig(max_steps=steps, prompts_per_step=4, group_size=8, lr=1e-2, length_schedule=((0, 8),),
                     shuffle_rewards=shuffle, overlong_filter=False, checkpoint_every=3, seed=0)
    hist = trainer.train_grpo(model, tokenizer, ROWS, _digit_share, cfg, HFGenerator(model, tokenizer),
                              _render, on_metrics=on_metrics, resume_dir=resume_dir, fingerprint="f")
    return model, hist


def test_grpo_learns_the_reward_and_the_shuffled_control_does_not(tokenizer):
    _, hist = _run(tokenizer, shuffle=False)
    _, control = _run(tokenizer, shuffle=True)
    start = sum(h["reward"] for h in hist[:3]) / 3
    end = sum(h["reward"] for h in hist[-3:]) / 3
    control_end = sum(h["reward"] for h in control[-3:]) / 3
    assert end > start + 0.3, (start, end)
    assert control_end < start + 0.15, (start, control_end)
    for key in ("reward", "accuracy", "response_length", "response_length_max", "truncation_rate", "entropy",
                "zero_variance_groups", "grad_norm", "completion_tokens_per_s", "steps_per_s", "filtered_prompts"):
        assert key in hist[-1]


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path, tokenizer):
    straight, hist = _run(tokenizer, shuffle=False, steps=7)

    class Crash(Exception):
        pass

    def crash_at_5(metrics, step):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        _run(tokenizer, shuffle=False, steps=7, resume_dir=str(tmp_path), on_metrics=crash_at_5)
    assert (tmp_path / "state.pt").exists()  # saved at step 3
    resumed, hist2 = _run(tokenizer, shuffle=False, steps=7, resume_dir=str(tmp_path))
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert [h["reward"] for h in hist] == [h["reward"] for h in hist2]
    assert not (tmp_path / "state.pt").exists()  # a finished stage clears its resume state


def test_resume_restores_a_stateful_generator_and_the_fault_counters(tmp_path, tokenizer):
    """A generator with state between calls (FixedRollouts: completions keyed by its call count) has
    it saved with the resume state, so the resumed run samples the rollouts of its step; the fault
    guard's counters come back too."""
    from ds_parity import FixedRollouts

    cfg = GRPOConfig(max_steps=4, prompts_per_step=2, group_size=4, lr=1e-2, length_schedule=((0, 8),),
                     checkpoint_every=2, seed=0)

    def run(**kw):
        model = _model(tokenizer)
        return model, trainer.train_grpo(model, tokenizer, ROWS, _digit_share, cfg, FixedRollouts(tokenizer), _render,
                                         fingerprint="f", **kw)

    straight, hist = run()

    def crash_at_3(metrics, step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(resume_dir=str(tmp_path), on_metrics=crash_at_3)
    saved = torch.load(tmp_path / "state.pt", weights_only=False)["extra"]
    assert saved["generator"] == {"calls": 2} and saved["guard"] == {"skipped": 0, "consecutive": 0, "last_bad": None}
    resumed, hist2 = run(resume_dir=str(tmp_path))
    assert [h["reward"] for h in hist2] == [h["reward"] for h in hist]  # without the call count: step 0's rollouts
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters()))


def test_a_batch_with_nothing_to_train_on_says_so(tokenizer, caplog):
    batch = _batch(tokenizer)
    batch.finished = [False] * 4  # all truncated, all masked by the overlong filter
    model = _model(tokenizer)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with caplog.at_level("WARNING"):
        m = trainer.grpo_step(model, opt, batch, torch.ones(4), GRPOConfig(overlong_filter=True),
                              tokenizer.pad_token_id)
    assert m["trained_tokens"] == 0 and m["grad_norm"] == 0.0
    assert "no gradient this step" in caplog.text


def test_context_curriculum_renders_prompts_under_the_step_budget(tokenizer):
    """Rollouts pass the budget of their step and a token counter to the renderer."""
    seen = []

    def render(row, thinking, max_prompt_tokens=None, count_tokens=None):
        seen.append((max_prompt_tokens, count_tokens("a b") if count_tokens else None))
        return _render(row, thinking)

    model = _model(tokenizer)
    cfg = GRPOConfig(max_steps=1, prompts_per_step=2, group_size=2, length_schedule=((0, 4),),
                     context_schedule=((0, 50), (3, 90)))
    for step in (0, 3):
        trainer.rollout(HFGenerator(model, tokenizer), tokenizer, ROWS[:2], cfg, step, render)
    assert [b for b, _ in seen] == [50, 50, 90, 90]
    assert seen[0][1] == len(tokenizer("a b", add_special_tokens=False).input_ids)
    with pytest.raises(ValueError, match="context_schedule must start at step 0"):
        GRPOConfig(context_schedule=((2, 64),))


@pytest.mark.parametrize("n, ratio, expected, reason", [
    (8, 0.5, 4, "RLHF's equal allocation: every batch exactly half thinking"),
    (8, 1.0, 8, "Math/Code/SWE RL: thinking only"),
    (8, 0.0, 0, "IF-RL for a unified model: non-thinking only"),
    (5, 0.5, 2, "odd batches round half to even"),
])
def test_thinking_modes_split_each_batch_exactly(n, ratio, expected, reason):
    import random

    modes = trainer.thinking_modes(n, ratio, random.Random(0))
    assert len(modes) == n and sum(modes) == expected, reason


# ---------------------------------------------------------------------------------------------
def test_a_rollout_shard_samples_its_share_as_one_process_would(tokenizer):
    """Rank r of w renders rows [r·n/w, (r+1)·n/w) with the thinking modes the whole batch drew and
    a seed offset by its first row (vLLM seeds prompt i with seed + i)."""
    seen = []

    class Recorder:
        def generate(self, prompts, params):
            seen.append((prompts, params.seed))
            return [[Completion("", [1], True)] * params.n for _ in prompts]

    def render(row, thinking):
        return f"{row['prompt']}|{thinking}"

    cfg = GRPOConfig(group_size=2, thinking_ratio=0.5, seed=3)
    rows = ROWS[:4]
    whole = trainer.rollout(Recorder(), tokenizer, rows, cfg, 5, render)
    shard = trainer.rollout(Recorder(), tokenizer, rows, cfg, 5, render, shard=(1, 2))
    (all_prompts, seed), (share_prompts, share_seed) = seen
    assert share_prompts == all_prompts[2:] and share_seed == seed + 2
    assert shard.prompt_ids == whole.prompt_ids[4:] and len(shard.texts) == 4


class _FakeLLM(FakeLLM):
    """``FakeLLM`` (tests/vllm_fakes.py) answering with the policy's tokenizer: sample j is "12" or "ab"."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tok = tokenizer

    def generate(self, requests, sampling, use_tqdm=True):
        self.calls.append(("generate", len(requests)))
        outs = []
        for request, sp in zip(requests, sampling):
            comps = []
            for j in range(sp.kwargs["n"]):
                text = "12" if j % 2 else "ab"
                ids = self.tok(text, add_special_tokens=False).input_ids + [self.tok.eos_token_id]
                comps.append(FakeCompletionOutput(j, text, ids, None, None, "stop"))
            outs.append(FakeRequestOutput(str(len(outs)), request["prompt_token_ids"], comps))
        return outs


def _vllm_generator(tokenizer, sleep_level=1):
    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    return VLLMGenerator(_FakeLLM(tokenizer), tokenizer, sleep_level=sleep_level, sampling_cls=FakeSamplingParams)


def test_vllm_rollouts_get_the_weights_after_every_optimiser_step(tokenizer):
    model = _model(tokenizer)
    gen = _vllm_generator(tokenizer)
    after_step = []
    cfg = GRPOConfig(max_steps=2, prompts_per_step=2, group_size=4, lr=1e-2, length_schedule=((0, 8),),
                     rollout_engine="vllm")
    trainer.train_grpo(model, tokenizer, ROWS, _digit_share, cfg, gen, _render,
                       on_metrics=lambda m, s: after_step.append({k: v.clone() for k, v in model.state_dict().items()}))
    sync = [("wake_up", ("weights",)), ("apply_model",), ("wake_up", ("kv_cache",)), ("reset_prefix_cache",)]
    step = [("generate", 2), ("sleep", 1)] + sync  # sample (then sleep), optimiser step, sync
    assert gen.llm.calls == [("apply_model",), ("reset_prefix_cache",)] + step + step  # a first sync, awake
    assert len(gen.llm.model.loaded) == 3 and gen.version == 3
    for loaded, weights in zip(map(dict, gen.llm.model.loaded[1:]), after_step):  # each sync sends that step's weights
        assert loaded.keys() <= weights.keys() and all(torch.equal(v, weights[k]) for k, v in loaded.items())
    first, last = dict(gen.llm.model.loaded[0]), dict(gen.llm.model.loaded[2])
    assert not torch.equal(first["lm_head.weight"], last["lm_head.weight"])  # it trained
    assert not any("rotary_emb" in k for k in first)


def test_vllm_rollouts_need_an_engine_that_syncs(tokenizer):
    model = _model(tokenizer)
    with pytest.raises(TypeError, match="sync_weights"):
        trainer.train_grpo(model, tokenizer, ROWS, _digit_share, GRPOConfig(max_steps=1, rollout_engine="vllm"),
                           HFGenerator(model, tokenizer), _render)


def test_build_generator_loads_vllm_from_the_trained_model(tokenizer, monkeypatch):
    from nemotron_cascade.generation import vllm_engine

    built = {}

    def from_pretrained(path, **kwargs):
        built.update(files=sorted(p.name for p in Path(path).iterdir()), kwargs=kwargs)
        return _vllm_generator(tokenizer)

    monkeypatch.setattr(vllm_engine.VLLMGenerator, "from_pretrained", staticmethod(from_pretrained))
    model = _model(tokenizer)
    cfg = GRPOConfig(rollout_engine="vllm", seed=7, vllm={"sleep_level": 1, "gpu_memory_utilization": 0.4})
    gen = trainer.build_generator(cfg, model, tokenizer)
    assert isinstance(gen, vllm_engine.VLLMGenerator)
    assert "config.json" in built["files"] and "tokenizer.json" in built["files"]
    assert built["kwargs"] == {"seed": 7, "sleep_level": 1, "gpu_memory_utilization": 0.4}
    assert isinstance(trainer.build_generator(GRPOConfig(), model, tokenizer), HFGenerator)


def test_gradient_checkpointing_gives_the_same_grpo_steps(tokenizer):
    """``gradient_checkpointing: true`` recomputes activations in the training backward only: the
    same rollouts (FixedRollouts), losses and weights as without it, and the model leaves the loop
    without checkpointing."""
    from ds_parity import FixedRollouts

    out = {}
    for gc in (False, True):
        cfg = GRPOConfig(max_steps=3, prompts_per_step=2, group_size=4, lr=1e-2, length_schedule=((0, 8),),
                         seed=0, gradient_checkpointing=gc)
        model = _model(tokenizer)
        hist = trainer.train_grpo(model, tokenizer, ROWS, _digit_share, cfg, FixedRollouts(tokenizer), _render)
        assert not compat.is_activation_checkpointing(model)
        out[gc] = (model, [h["loss"] for h in hist])
    assert any(abs(v) > 0 for v in out[False][1])  # the steps did train
    assert out[True][1] == pytest.approx(out[False][1], abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out[False][0].parameters(), out[True][0].parameters()))
