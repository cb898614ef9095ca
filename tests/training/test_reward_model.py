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
    history = rm_lib.train_reward_model(rm, tokenizer, train, val, rm_lib.RMConfig(epochs=3, batch_size=16, lr=1e-3))
    after = history[-1]["val_accuracy"]
    assert before < 0.6 and after >= 0.8, (before, after)
    first, last = [h["loss"] for h in history[:10]], [h["loss"] for h in history[-10:]]
    assert sum(last) < 0.7 * sum(first), (first, last)  # single small batches are noisy; compare means
    assert {"val_accuracy/general", "val_accuracy_flaw/verbose", "val_margin"} <= set(history[-1])
