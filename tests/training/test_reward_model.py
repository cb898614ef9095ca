"""Bradley–Terry reward model: the loss by hand, last-token scoring, a tiny RM that learns."""

import math

import pytest
import torch

from nemotron_cascade.data import preferences, world
from nemotron_cascade.training import reward_model as rm_lib


def test_bradley_terry_loss_by_hand():
    rc, rr = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigma(1) = log(1 + e^-1) = 0.31326; -log sigma(0) = log 2 = 0.69315
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert float(rm_lib.bradley_terry_loss(rc, rr)) == pytest.approx(expected, abs=1e-6)
    # centering adds c * mean((rc + rr)^2) = 0.1 * (1 + 0) / 2
    assert float(rm_lib.bradley_terry_loss(rc, rr, 0.1)) == pytest.approx(expected + 0.05, abs=1e-6)
    # swapping chosen and rejected: -log sigma(-1) = 1.31326
    assert float(rm_lib.bradley_terry_loss(rr[:1], rc[:1])) == pytest.approx(math.log(1 + math.e), abs=1e-6)


def test_reward_model_from_policy_keeps_the_body_and_scores_the_last_token(tiny_model, tokenizer):
    rm = rm_lib.reward_model_from_policy(tiny_model, tokenizer)
    for name, p in tiny_model.model.state_dict().items():
        assert torch.equal(rm.model.state_dict()[name], p), name
    torch.nn.init.normal_(rm.score.weight)  # the fresh head starts at zero; give it something to say
    texts = [rm_lib.render_scored("Tell me about owls.", "Owls live near rivers."),
             rm_lib.render_scored("Hi?", "A much longer answer that needs many more tokens than the other one.")]
    together = rm_lib.score_texts(rm, tokenizer, texts)
    alone = torch.cat([rm_lib.score_texts(rm, tokenizer, [t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)  # padding never changes a score
    # the score is read at the last token: changing an earlier token changes it, appending changes it
    assert not torch.allclose(rm_lib.score_texts(rm, tokenizer, [texts[0] + " x"]), alone[:1])


def test_a_tiny_reward_model_learns_real_preferences(tokenizer):
    rows = world.generate_tasks("general", "sft", 200, 0)
    pairs = preferences.build_pairs(rows, ["general"], None, 0.25, 0)
    train = [p for p in pairs if p["split"] == "train"]
    val = [p for p in pairs if p["split"] == "validation"]
    rm = rm_lib.reward_model_from_scratch(tokenizer, {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                                       "num_kv_heads": 1, "intermediate_size": 64})
    before = rm_lib.pairwise_accuracy(rm, tokenizer, val, rm_lib.RMConfig())["accuracy"]
    history = rm_lib.train_reward_model(rm, tokenizer, train, val, rm_lib.RMConfig(epochs=3, batch_size=16, lr=5e-4))
    after = history[-1]["val_accuracy"]
    assert before < 0.6 and after >= 0.8, (before, after)
    first, last = [h["loss"] for h in history[:10]], [h["loss"] for h in history[-10:]]
    assert sum(last) < 0.7 * sum(first), (first, last)  # single small batches are noisy; compare means
    assert {"val_accuracy/general", "val_accuracy_flaw/verbose", "val_margin"} <= set(history[-1])


# ---------------------------------------------------------------------------------------- mid-stage resume
RESUME_SIZE = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 32}


@pytest.fixture(scope="module")
def resume_pairs():
    pairs = preferences.build_pairs(world.generate_tasks("general", "sft", 40, 0), ["general"], None, 0.25, 0)
    return [p for p in pairs if p["split"] == "train"][:20], [p for p in pairs if p["split"] == "validation"][:4]


def test_resume_reproduces_uninterrupted_training_exactly(tmp_path, tokenizer, resume_pairs):
    """Killed at step 5 (last state at step 4, inside the second epoch) and rerun: the same weights
    and history steps as one uninterrupted run; the finished run removes its state."""
    train, val = resume_pairs
    cfg = rm_lib.RMConfig(epochs=2, batch_size=6, lr=1e-3, warmup_steps=2, eval_every=3, checkpoint_every=2)
    straight = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    ref = rm_lib.train_reward_model(straight, tokenizer, train, val, cfg)
    assert [h["step"] for h in ref] == list(range(1, 9))  # 4 batches per epoch (the last one of 2 pairs)

    class Crash(Exception):
        pass

    def crash_at_5(metrics, step):
        if step == 5:
            raise Crash

    resumed = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    with pytest.raises(Crash):
        rm_lib.train_reward_model(resumed, tokenizer, train, val, cfg, on_metrics=crash_at_5,
                                  resume_dir=str(tmp_path), fingerprint="f")
    assert (tmp_path / "state.pt").exists()
    resumed, seen = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE), []
    hist = rm_lib.train_reward_model(resumed, tokenizer, train, val, cfg, on_metrics=lambda m, s: seen.append(s),
                                     resume_dir=str(tmp_path), fingerprint="f")
    assert seen == [5, 6, 7, 8]  # continued after the saved step 4
    assert [h["step"] for h in hist] == list(range(1, 9))
    assert [h["loss"] for h in hist] == [h["loss"] for h in ref]
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n
    assert not tmp_path.exists()  # a finished stage removes its resume state


def test_resume_state_of_another_run_is_ignored_and_the_final_state_kept(tmp_path, tokenizer, resume_pairs):
    from nemotron_cascade.training import resume

    train, val = resume_pairs
    cfg = rm_lib.RMConfig(epochs=1, batch_size=10, warmup_steps=1, checkpoint_every=1)
    model = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    resume.save(str(tmp_path), "other-run", model, torch.optim.AdamW(model.parameters()), None, 1, [{"step": 1}])
    seen = []
    hist = rm_lib.train_reward_model(model, tokenizer, train, val, cfg, on_metrics=lambda m, s: seen.append(s),
                                     resume_dir=str(tmp_path), fingerprint="this-run", keep_final_state=True)
    assert seen == [1, 2] and [h["step"] for h in hist] == [1, 2]  # started afresh
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    assert (state["fingerprint"], state["step"]) == ("this-run", 2)  # kept for the run journal to clear
    again = rm_lib.train_reward_model(rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE), tokenizer, train, val,
                                      cfg, resume_dir=str(tmp_path), fingerprint="this-run", keep_final_state=True)
    assert again == hist  # a rerun after the last step returns at once


def test_the_deepspeed_path_resumes_through_sharded_checkpoints(tmp_path, tokenizer, resume_pairs, monkeypatch):
    """``engine: deepspeed`` saves and loads through resume.save_sharded/load_sharded: here on a
    one-rank stand-in (plain torch updates, DeepSpeed's checkpoint one file per tag; the real
    2-rank loop is the parity test's); killed and rerun, it matches the uninterrupted run."""
    from ds_fakes import OneRankDeepSpeed

    from nemotron_cascade.training import loop, resume

    monkeypatch.setattr(loop.engines, "make_loop_engine", lambda kind, model, opt, ds, grad_clip, micro,
                        precision=None: OneRankDeepSpeed(model, opt, grad_clip))
    train, val = resume_pairs
    cfg = rm_lib.RMConfig(epochs=1, batch_size=5, lr=1e-3, warmup_steps=1, checkpoint_every=2, engine="deepspeed")
    straight = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    ref = rm_lib.train_reward_model(straight, tokenizer, train, val, cfg)

    def crash_at_3(metrics, step):
        if step == 3:
            raise RuntimeError("killed")

    resumed = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    with pytest.raises(RuntimeError, match="killed"):
        rm_lib.train_reward_model(resumed, tokenizer, train, val, cfg, on_metrics=crash_at_3,
                                  resume_dir=str(tmp_path), fingerprint="f")
    assert resume.read_pointer(tmp_path)["step"] == 2
    resumed = rm_lib.reward_model_from_scratch(tokenizer, RESUME_SIZE)
    hist = rm_lib.train_reward_model(resumed, tokenizer, train, val, cfg, resume_dir=str(tmp_path), fingerprint="f")
    assert [h["step"] for h in hist] == [1, 2, 3, 4] and [h["loss"] for h in hist] == [h["loss"] for h in ref]
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), n
    assert not tmp_path.exists()
